#include "rdma/fd_passing.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace swrdma::rdma {

void UniqueFd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status SendMessage(int sock, std::span<const uint8_t> bytes, int fd) {
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  while (true) {
    const ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(bytes.size())) return Status::Ok();
    if (n < 0 && errno == EINTR) continue;
    const int err = n < 0 ? errno : EMSGSIZE;
    return Status(err == EPIPE || err == ECONNRESET ? Code::kUnavailable : Code::kIOError,
                  fmt::format("sending on the local socket: {}", std::strerror(err)));
  }
}

Result<ReceivedMessage> ReceiveMessage(int sock, size_t max, std::chrono::milliseconds timeout) {
  if (timeout.count() >= 0) {
    pollfd p{sock, POLLIN, 0};
    int r = 0;
    do {
      r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
      return Error(Code::kTimeout,
                   fmt::format("no answer on the local socket within {} ms", timeout.count()));
    }
    if (r < 0) {
      return Error(Code::kIOError,
                   fmt::format("waiting on the local socket: {}", std::strerror(errno)));
    }
  }
  ReceivedMessage out;
  out.bytes.resize(max);
  iovec iov{out.bytes.data(), max};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // Room for a few descriptors: a misbehaving peer sending more gets them closed, not leaked.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = 0;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    const int err = errno;
    return Error(err == ECONNRESET ? Code::kUnavailable : Code::kIOError,
                 fmt::format("receiving on the local socket: {}", std::strerror(err)));
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (!out.fd) {
        out.fd = UniqueFd(fd);
      } else {
        ::close(fd);
      }
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    return Error(Code::kCorruption,
                 fmt::format("a local-socket message longer than {} bytes was cut", max));
  }
  out.bytes.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace swrdma::rdma
