// Status and Result<T>: the one way anything fallible in swrdma reports failure.
//
// Every error code the project uses, RDMA ones included, is declared here once. Translation from
// foreign codes (ucs_status_t, ibv_wc_status, errno) lives next to the code that meets them
// (rdma/ucx/ucx_status.h), but always lands on one of these.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace swrdma {

enum class Code : uint8_t {
  kOk = 0,
  kInvalidArgument,    // malformed input from a caller: fid, flag, request field
  kNotFound,           // no such needle / file
  kDeleted,            // the needle existed and was deleted
  kUnknownVolume,      // no such volume exported here
  kStale,              // the generation a caller holds is no longer exported
  kCorruption,         // bytes on disk or on the wire do not parse
  kChecksumMismatch,   // CRC-32C of needle data does not match the stored checksum
  kIOError,            // a system call on a file failed
  kTimeout,            // an operation did not finish in time
  kUnavailable,        // peer unreachable, service not ready, shutting down
  kPermissionDenied,   // authorization failed
  kResourceExhausted,  // limits: sizes, connections, memory
  kUnsupported,        // valid but not implemented / not possible on this host
  kRdmaNoDevice,       // no usable RDMA device or transport
  kRdmaTransport,      // transport / endpoint failure (UCX, verbs)
  kRdmaRemoteAccess,   // remote key or remote address rejected
  kCancelled,
  kInternal,  // a bug: an invariant did not hold
};

// Stable lower-case name of a code ("checksum_mismatch"); used in logs, JSON and metrics.
std::string_view code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "checksum_mismatch: needle 3,01637037d6: stored 0x1234 computed 0x5678"
  std::string ToString() const;

  // Prefixes the message with what the caller was doing: "reading 3.idx: " + message.
  Status WithContext(std::string_view context) const;

  // Explicitly discards a Status where ignoring it is the right thing (e.g. best-effort cleanup).
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) = default;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

template <typename T>
using Result = std::expected<T, Status>;

inline std::unexpected<Status> Error(Code code, std::string message) {
  return std::unexpected<Status>(Status(code, std::move(message)));
}
inline std::unexpected<Status> Error(Status status) {
  return std::unexpected<Status>(std::move(status));
}

namespace internal {
// What the macros below return: converts to a Status or to any Result<T>, so they work in
// functions of either return type.
struct ErrorReturn {
  Status status;
  operator Status() && { return std::move(status); }
  template <typename T>
  operator Result<T>() && {
    return std::unexpected<Status>(std::move(status));
  }
};
}  // namespace internal

}  // namespace swrdma

#define SWRDMA_CONCAT_INNER(a, b) a##b
#define SWRDMA_CONCAT(a, b) SWRDMA_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if it is not ok. Works in functions returning
// Status or Result<T>.
#define SWRDMA_RETURN_IF_ERROR(expr)                                                             \
  do {                                                                                           \
    ::swrdma::Status swrdma_status_ = (expr);                                                    \
    if (!swrdma_status_.ok()) return ::swrdma::internal::ErrorReturn{std::move(swrdma_status_)}; \
  } while (0)

// auto x = value of a Result<T>, or return its error.
#define SWRDMA_ASSIGN_OR_RETURN(lhs, expr) \
  SWRDMA_ASSIGN_OR_RETURN_IMPL(SWRDMA_CONCAT(swrdma_result_, __LINE__), lhs, expr)
#define SWRDMA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                        \
  auto tmp = (expr);                                                        \
  if (!tmp) return ::swrdma::internal::ErrorReturn{std::move(tmp).error()}; \
  lhs = std::move(*tmp)
