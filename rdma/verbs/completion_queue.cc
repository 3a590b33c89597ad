#include "rdma/verbs/completion_queue.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>
#include <utility>

#include "rdma/verbs/verbs_status.h"

namespace swrdma::rdma::verbs {

Result<CompletionQueue> CompletionQueue::Open(const Device& device, int entries, bool events) {
  ibv_comp_channel* channel = nullptr;
  if (events) {
    errno = 0;
    channel = ibv_create_comp_channel(device.get());
    if (channel == nullptr) {
      return Error(
          FromErrno(errno != 0 ? errno : ENOMEM, "ibv_create_comp_channel on " + device.name()));
    }
  }
  errno = 0;
  ibv_cq* cq = ibv_create_cq(device.get(), entries, nullptr, channel, 0);
  if (cq == nullptr) {
    const int err = errno != 0 ? errno : ENOMEM;
    if (channel != nullptr) ibv_destroy_comp_channel(channel);
    return Error(FromErrno(
        err, "ibv_create_cq of " + std::to_string(entries) + " entries on " + device.name()));
  }
  return CompletionQueue(cq, channel);
}

CompletionQueue::CompletionQueue(CompletionQueue&& other) noexcept
    : cq_(std::exchange(other.cq_, nullptr)),
      channel_(std::exchange(other.channel_, nullptr)),
      unacked_(std::exchange(other.unacked_, 0)) {}

CompletionQueue& CompletionQueue::operator=(CompletionQueue&& other) noexcept {
  if (this != &other) {
    Close();
    cq_ = std::exchange(other.cq_, nullptr);
    channel_ = std::exchange(other.channel_, nullptr);
    unacked_ = std::exchange(other.unacked_, 0);
  }
  return *this;
}

CompletionQueue::~CompletionQueue() {
  Close();
}

void CompletionQueue::Close() {
  if (cq_ != nullptr) {
    if (unacked_ != 0) ibv_ack_cq_events(cq_, unacked_);
    ibv_destroy_cq(cq_);
  }
  if (channel_ != nullptr) ibv_destroy_comp_channel(channel_);
  cq_ = nullptr;
  channel_ = nullptr;
  unacked_ = 0;
}

Result<size_t> CompletionQueue::Poll(std::span<ibv_wc> out) const {
  int n = ibv_poll_cq(cq_, static_cast<int>(out.size()), out.data());
  if (n < 0) return Error(Code::kRdmaTransport, "ibv_poll_cq failed: the CQ is in error");
  return static_cast<size_t>(n);
}

Result<size_t> CompletionQueue::SleepAndPoll(std::span<ibv_wc> out,
                                             std::chrono::steady_clock::time_point until) const {
  if (channel_ == nullptr) return Poll(out);
  if (int rc = ibv_req_notify_cq(cq_, 0); rc != 0) {
    return Error(FromErrno(rc, "ibv_req_notify_cq (arming the completion event)"));
  }
  SWRDMA_ASSIGN_OR_RETURN(size_t n, Poll(out));
  if (n > 0) return n;
  const auto now = std::chrono::steady_clock::now();
  // At most 100 ms at a time: the caller's own deadline checks stay timely.
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - now);
  const int ms = static_cast<int>(std::clamp<int64_t>(left.count(), 0, 100));
  pollfd pfd{channel_->fd, POLLIN, 0};
  int ready = ::poll(&pfd, 1, ms);
  if (ready < 0 && errno != EINTR) {
    return Error(FromErrno(errno, "poll of the completion channel"));
  }
  if (ready > 0) {
    ibv_cq* ev_cq = nullptr;
    void* ev_ctx = nullptr;
    // Readable: one event is there, this does not block.
    if (ibv_get_cq_event(channel_, &ev_cq, &ev_ctx) == 0 && ++unacked_ >= 64) {
      ibv_ack_cq_events(cq_, unacked_);
      unacked_ = 0;
    }
  }
  return Poll(out);
}

Result<ibv_wc> CompletionQueue::WaitOne(std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  ibv_wc wc{};
  for (uint64_t spins = 0;; ++spins) {
    SWRDMA_ASSIGN_OR_RETURN(size_t n, Poll({&wc, 1}));
    if (n == 1) return wc;
    // Reading the clock on every empty poll would dominate a busy loop; every 256th is enough.
    if ((spins & 255) == 0 && std::chrono::steady_clock::now() > deadline) {
      return Error(Code::kTimeout, "no completion within " + std::to_string(timeout.count()) +
                                       " ms (peer gone, or nothing was posted)");
    }
  }
}

}  // namespace swrdma::rdma::verbs
