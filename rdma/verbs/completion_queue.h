// Owner of a verbs completion queue, polled by its user: busy, or (opened with events) busy for a
// while and then asleep on its completion channel until the next completion.
#pragma once

#include <chrono>
#include <span>

#include <infiniband/verbs.h>

#include "protocol/status.h"
#include "rdma/verbs/device.h"

namespace swrdma::rdma::verbs {

class CompletionQueue {
 public:
  // ibv_create_cq with room for `entries` completions, on `device` (which must outlive it). With
  // `events`, on a completion channel of its own, so that a waiter may sleep (SleepAndPoll).
  static Result<CompletionQueue> Open(const Device& device, int entries, bool events = false);

  CompletionQueue(CompletionQueue&& other) noexcept;
  CompletionQueue& operator=(CompletionQueue&& other) noexcept;
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;
  ~CompletionQueue();  // ibv_destroy_cq; every QP using it must be gone

  ibv_cq* get() const { return cq_; }

  // Takes up to out.size() completions without waiting; returns how many. An error only if the
  // CQ itself failed (a failed work request is a completion with its own status).
  Result<size_t> Poll(std::span<ibv_wc> out) const;

  // Opened with events: arms the CQ's notification, polls once more (a completion that came
  // before the arming raises no event), and if there was none sleeps on the channel until one
  // comes or `until`, then polls. Without events: Poll. Why sleep at all: a waiter spinning
  // through a long READ holds a core the device may need, and on Soft-RoCE the device is the
  // kernel on the same cores (measured in the VM test, docs/benchmarks.md).
  Result<size_t> SleepAndPoll(std::span<ibv_wc> out,
                              std::chrono::steady_clock::time_point until) const;
  bool has_events() const { return channel_ != nullptr; }

  // Busy-polls until one completion arrives (kTimeout after `timeout`). The completion's own
  // status is the caller's to check (FromWc).
  Result<ibv_wc> WaitOne(std::chrono::milliseconds timeout) const;

 private:
  CompletionQueue(ibv_cq* cq, ibv_comp_channel* channel) : cq_(cq), channel_(channel) {}
  void Close();
  ibv_cq* cq_ = nullptr;
  ibv_comp_channel* channel_ = nullptr;
  // Events taken and not yet acknowledged (acknowledged in batches: ibv_ack_cq_events takes a
  // lock; ibv_destroy_cq waits for all of them). Bookkeeping of the channel, not of the queue's
  // contents, hence mutable in the const SleepAndPoll.
  mutable unsigned unacked_ = 0;
};

}  // namespace swrdma::rdma::verbs
