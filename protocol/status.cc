#include "protocol/status.h"

namespace swrdma {

std::string_view code_name(Code code) {
  switch (code) {
    case Code::kOk:
      return "ok";
    case Code::kInvalidArgument:
      return "invalid_argument";
    case Code::kNotFound:
      return "not_found";
    case Code::kDeleted:
      return "deleted";
    case Code::kUnknownVolume:
      return "unknown_volume";
    case Code::kStale:
      return "stale";
    case Code::kCorruption:
      return "corruption";
    case Code::kChecksumMismatch:
      return "checksum_mismatch";
    case Code::kIOError:
      return "io_error";
    case Code::kTimeout:
      return "timeout";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kPermissionDenied:
      return "permission_denied";
    case Code::kResourceExhausted:
      return "resource_exhausted";
    case Code::kUnsupported:
      return "unsupported";
    case Code::kRdmaNoDevice:
      return "rdma_no_device";
    case Code::kRdmaTransport:
      return "rdma_transport";
    case Code::kRdmaRemoteAccess:
      return "rdma_remote_access";
    case Code::kCancelled:
      return "cancelled";
    case Code::kInternal:
      return "internal";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string out(code_name(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  return Status(code_, std::move(msg));
}

}  // namespace swrdma
