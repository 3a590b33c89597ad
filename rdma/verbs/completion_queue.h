// Owner of a verbs completion queue, polled (busy) by its user.
#pragma once

#include <chrono>
#include <span>

#include <infiniband/verbs.h>

#include "protocol/status.h"
#include "rdma/verbs/device.h"

namespace swrdma::rdma::verbs {

class CompletionQueue {
 public:
  // ibv_create_cq with room for `entries` completions, on `device` (which must outlive it).
  static Result<CompletionQueue> Open(const Device& device, int entries);

  CompletionQueue(CompletionQueue&& other) noexcept;
  CompletionQueue& operator=(CompletionQueue&& other) noexcept;
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;
  ~CompletionQueue();  // ibv_destroy_cq; every QP using it must be gone

  ibv_cq* get() const { return cq_; }

  // Takes up to out.size() completions without waiting; returns how many. An error only if the
  // CQ itself failed (a failed work request is a completion with its own status).
  Result<size_t> Poll(std::span<ibv_wc> out) const;

  // Busy-polls until one completion arrives (kTimeout after `timeout`). The completion's own
  // status is the caller's to check (FromWc).
  Result<ibv_wc> WaitOne(std::chrono::milliseconds timeout) const;

 private:
  explicit CompletionQueue(ibv_cq* cq) : cq_(cq) {}
  ibv_cq* cq_ = nullptr;
};

}  // namespace swrdma::rdma::verbs
