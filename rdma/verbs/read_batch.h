// A sliding window of RDMA READs on one connection into pooled, registered buffers: the verbs
// counterpart of the UCX GetBatch (rdma/ucx/get.h), with the same shape so the client's read
// round drives either (client/read_round.cc).
//
// Buffers stay with the batch until their READ completed or was flushed: a READ still queued
// in the NIC writes into its buffer whenever it runs, so a buffer is never handed back before
// its completion. On a deadline the QP is moved to the error state, which flushes everything
// queued at once; a READ refused by the peer (remote access error: a retired rkey, an address
// outside the region) puts the QP in error too, and every later READ on it is flushed. Either
// way the connection is `broken()` and must be replaced.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "protocol/status.h"
#include "rdma/buffer_pool.h"
#include "rdma/verbs/completion_queue.h"
#include "rdma/verbs/connection.h"

namespace swrdma::rdma::verbs {

class ReadBatch {
 public:
  using Clock = std::chrono::steady_clock;

  // Empty polls before a wait sleeps on the CQ's completion channel (when it has one): longer
  // than a READ takes on a NIC, so a busy pipeline never sleeps; a long wait costs no core.
  static constexpr std::chrono::microseconds kDefaultSpin{50};

  // `connection` and `cq` (the one its QP completes to) must outlive the batch.
  ReadBatch(Connection& connection, const CompletionQueue& cq,
            std::chrono::microseconds spin = kDefaultSpin);
  ReadBatch(const ReadBatch&) = delete;
  ReadBatch& operator=(const ReadBatch&) = delete;
  // Fails the QP and drains what is still queued (bounded), so no READ outlives its buffer.
  ~ReadBatch();

  // READs that may be outstanding at once (the send queue's depth).
  size_t capacity() const { return capacity_; }

  // Posts a READ of `length` (<= buffer.size()) bytes at remote_address under rkey into the
  // pooled buffer (registered with this connection's protection domain), held by the batch until
  // the READ completes. Returns the READ's index. A READ that cannot be posted (no room, a
  // buffer of another registrar, a broken QP) is complete at once with its error.
  size_t PostPooled(uint32_t rkey, uint64_t remote_address, size_t length, PooledBuffer buffer);
  // One piece of a record read in several READs (an erasure-coded needle across shards).
  struct Segment {
    uint32_t rkey = 0;
    uint64_t remote_address = 0;
    size_t length = 0;
  };
  // Posts one READ per segment into consecutive bytes of the pooled buffer, as one entry of the
  // batch (one index, one status): complete when all its READs are, failed if any failed. Needs
  // segments.size() free places in the send queue (each READ is one); fewer, or more segments
  // than capacity(), and it is complete at once with kResourceExhausted.
  size_t PostPooledSegments(std::span<const Segment> segments, PooledBuffer buffer);
  // The buffer of a completed READ (empty if the READ failed).
  PooledBuffer TakePooled(size_t index);

  // Polls until every READ completed or `deadline` passed (after `spin` without a completion,
  // asleep on the CQ's channel if it has one). Ok when all completed (each may have
  // failed: status(i)); kTimeout otherwise: the QP was failed and the rest flushed (kTimeout).
  Status Wait(Clock::time_point deadline) { return WaitUntilPendingAtMost(0, deadline); }
  Status WaitUntilPendingAtMost(size_t pending, Clock::time_point deadline);

  // Indices of the READs completed (ok or not) since the last call, in completion order.
  void TakeCompleted(std::vector<size_t>& out) {
    out.clear();
    out.swap(completed_);
  }
  size_t size() const { return slots_.size(); }
  // READs outstanding (a multi-segment entry counts one per segment still in flight).
  size_t pending() const { return pending_; }
  const Status& status(size_t index) const { return slots_[index].status; }
  // True once a READ failed or a deadline passed: the QP is in error, reconnect.
  bool broken() const { return broken_; }

  // Clears completed READs so the batch can be reused (kInternal while some are in flight,
  // kCancelled once broken: a READ never completed may still own its buffer).
  Status Reset();

 private:
  struct Slot {
    PooledBuffer buffer;
    size_t length = 0;
    Status status;
    size_t outstanding = 0;  // its READs posted and not yet completed
    bool done = false;
  };
  void Complete(size_t index, Status status, bool release = true);
  // Takes what completions there are; with `sleep`, first waits for one (at most until `until`).
  Status Poll(bool sleep = false, Clock::time_point until = {});
  void Drain(Clock::time_point deadline);  // after Fail: waits for the flushes

  Connection* connection_;
  const CompletionQueue* cq_;
  size_t capacity_;
  std::chrono::microseconds spin_;
  std::vector<Slot> slots_;
  std::vector<size_t> completed_;
  size_t pending_ = 0;
  bool broken_ = false;
};

}  // namespace swrdma::rdma::verbs
