// Unix-socket plumbing for the same-host read path (issue 18): an owned descriptor, and one
// SOCK_SEQPACKET message with an optional descriptor attached (SCM_RIGHTS). Shared by the agent's
// local server and the client's local reader.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "protocol/status.h"

namespace swrdma::rdma {

// Owner of a file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset();

 private:
  int fd_ = -1;
};

// Sends `bytes` as one message, with `fd` attached when >= 0. MSG_NOSIGNAL: a vanished peer is
// an error (kUnavailable), not SIGPIPE.
Status SendMessage(int sock, std::span<const uint8_t> bytes, int fd = -1);

struct ReceivedMessage {
  std::vector<uint8_t> bytes;  // empty with ok status: the peer closed the connection
  UniqueFd fd;                 // the attached descriptor, if any (close-on-exec)
};

// Receives one message of at most `max` bytes, waiting up to `timeout` (negative: forever).
// A longer message is kCorruption (it was truncated); extra attached descriptors are closed.
Result<ReceivedMessage> ReceiveMessage(int sock, size_t max, std::chrono::milliseconds timeout);

}  // namespace swrdma::rdma
