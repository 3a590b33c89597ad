#include "rdma/verbs/completion_queue.h"

#include <cerrno>
#include <string>
#include <utility>

#include "rdma/verbs/verbs_status.h"

namespace swrdma::rdma::verbs {

Result<CompletionQueue> CompletionQueue::Open(const Device& device, int entries) {
  errno = 0;
  ibv_cq* cq = ibv_create_cq(device.get(), entries, nullptr, nullptr, 0);
  if (cq == nullptr) {
    return Error(
        FromErrno(errno != 0 ? errno : ENOMEM,
                  "ibv_create_cq of " + std::to_string(entries) + " entries on " + device.name()));
  }
  return CompletionQueue(cq);
}

CompletionQueue::CompletionQueue(CompletionQueue&& other) noexcept
    : cq_(std::exchange(other.cq_, nullptr)) {}

CompletionQueue& CompletionQueue::operator=(CompletionQueue&& other) noexcept {
  if (this != &other) {
    if (cq_ != nullptr) ibv_destroy_cq(cq_);
    cq_ = std::exchange(other.cq_, nullptr);
  }
  return *this;
}

CompletionQueue::~CompletionQueue() {
  if (cq_ != nullptr) ibv_destroy_cq(cq_);
}

Result<size_t> CompletionQueue::Poll(std::span<ibv_wc> out) const {
  int n = ibv_poll_cq(cq_, static_cast<int>(out.size()), out.data());
  if (n < 0) return Error(Code::kRdmaTransport, "ibv_poll_cq failed: the CQ is in error");
  return static_cast<size_t>(n);
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
