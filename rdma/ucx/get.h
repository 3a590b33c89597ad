// One-sided reads: ucp_get_nbx from a remote registered region into local memory.
//
// GetBatch posts any number of gets on one endpoint and progresses the worker until all have
// completed or a deadline passes. The rules it keeps:
//  - a UCX request is never freed before its completion callback ran;
//  - on a deadline, pending gets are cancelled with ucp_request_cancel, but UCX only cancels
//    receives (RMA requests ignore it), so the endpoint is then aborted (UcxEndpoint::Abort).
//    With peer error handling that force-closes it and every outstanding get completes with
//    UCS_ERR_CANCELED. Without it (shared-memory transports in UCX 1.13) nothing can complete
//    them: an emulated get finishes only when the target's reply arrives, if ever. Such a get is
//    abandoned: its slot (and, for Post, its buffer) is handed to the worker, freed by the UCX
//    callback if the reply ever comes, else when the worker is destroyed. A timeout costs the
//    endpoint in both cases; the caller reconnects.
//  - reads outside the RemoteKey's region are rejected before posting (kRdmaRemoteAccess): on
//    emulated transports the target serves whatever address it is sent, unchecked.
//
// Post (batch-owned buffer) is safe in every case. PostInto writes caller memory: if a get into it
// is ever abandoned, UCX may still write that memory until the worker is destroyed.
//
// Thread: the worker's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <ucp/api/ucp.h>

#include "protocol/status.h"
#include "rdma/buffer_pool.h"
#include "rdma/ucx/memory_region.h"
#include "rdma/ucx/ucx_endpoint.h"
#include "rdma/ucx/ucx_worker.h"

namespace swrdma::rdma {

class GetBatch {
 public:
  // The endpoint must outlive the batch.
  explicit GetBatch(UcxEndpoint& endpoint);
  GetBatch(const GetBatch&) = delete;
  GetBatch& operator=(const GetBatch&) = delete;
  // Waits out anything still in flight (aborting the endpoint if it has to).
  ~GetBatch();

  // Posts a read of `length` bytes at remote_address (inside rkey's region) into a buffer the
  // batch owns (data(i) / TakeData(i) after Wait). Returns the get's index. A get that cannot be
  // posted (out of range, endpoint failed) is complete at once with its error.
  size_t Post(const RemoteKey& rkey, uint64_t remote_address, size_t length);
  // Same, into caller memory that must stay valid until Wait returns (see the note above about
  // abandoned gets). `memh`, when the destination is registered (e.g. a PooledBuffer), spares UCX
  // looking the destination up in its registration cache (UCP_OP_ATTR_FIELD_MEMH).
  size_t PostInto(const RemoteKey& rkey, uint64_t remote_address, std::span<std::byte> destination,
                  ucp_mem_h memh = nullptr);
  // Reads `length` (<= buffer.size()) bytes into a registered pooled buffer that the batch holds
  // while the get is in flight (TakePooled(i) after completion). Safe like Post: if the get is
  // abandoned, the buffer goes with it and returns to its pool only once UCX is done with it.
  size_t PostPooled(const RemoteKey& rkey, uint64_t remote_address, size_t length,
                    PooledBuffer buffer);
  // The buffer of a completed PostPooled get (empty if the get was abandoned).
  PooledBuffer TakePooled(size_t index);

  // Progresses the worker until every get has completed or `deadline` passes. Ok when all
  // completed (each may still have failed: see status(i)); kTimeout when some did not: those
  // report kTimeout and the endpoint has been aborted.
  Status Wait(Deadline deadline) { return WaitUntilPendingAtMost(0, deadline); }
  // Progresses until at most `pending` gets are in flight (a sliding window: wait for a free
  // slot, post the next get). On the deadline, like Wait: everything pending is drained, kTimeout.
  Status WaitUntilPendingAtMost(size_t pending, Deadline deadline);

  // Indices of the gets completed (ok or not) since the last call, in completion order.
  void TakeCompleted(std::vector<size_t>& out) {
    out.clear();
    out.swap(completed_);
  }
  bool done(size_t index) const { return slots_[index]->done; }

  size_t size() const { return slots_.size(); }
  size_t pending() const { return pending_; }
  // Ok, or why get `index` failed. kInternal "still in flight" before Wait.
  const Status& status(size_t index) const;
  // The first failure in post order, or Ok.
  Status FirstError() const;
  // The bytes a Post get read (empty for PostInto gets and for failed ones).
  std::span<const std::byte> data(size_t index) const;
  std::vector<std::byte> TakeData(size_t index);

  // Clears completed gets so the batch can be reused (kInternal if some are still in flight).
  // Slot objects are kept for the next posts: a reused batch allocates nothing per get.
  Status Reset();

  // One get; heap-allocated so its address can be UCX's user_data for as long as UCX needs it.
  struct Slot {
    GetBatch* batch = nullptr;             // null once abandoned (see Drain)
    detail::WorkerCore* worker = nullptr;  // set when abandoned: who frees it
    void* request = nullptr;               // UCX request while in flight
    uint64_t remote_address = 0;
    size_t length = 0;
    size_t index = 0;  // in slots_
    bool done = false;
    Status status;
    std::vector<std::byte> owned;  // Post's buffer
    PooledBuffer pooled;           // PostPooled's buffer
  };

 private:
  std::unique_ptr<Slot> NewSlot();
  size_t PostSlot(std::unique_ptr<Slot> owned_slot, const RemoteKey& rkey, std::byte* destination,
                  ucp_mem_h memh);
  static void OnComplete(void* request, ucs_status_t status, void* user_data);
  void Complete(Slot& slot, Status status);
  // Cancel, abort the endpoint, wait (bounded) for the callbacks, abandon what is left.
  void Drain(const Status& reason);

  detail::EndpointCore* endpoint_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::unique_ptr<Slot>> spare_;  // reset slots, reused by the next posts
  std::vector<size_t> completed_;
  size_t pending_ = 0;
};

// Reads `length` bytes at remote_address; waits until done or `deadline`.
Result<std::vector<std::byte>> Read(UcxEndpoint& endpoint, const RemoteKey& rkey,
                                    uint64_t remote_address, size_t length, Deadline deadline);

// Reads destination.size() bytes at remote_address into caller memory (PostInto's caveat).
Status Get(UcxEndpoint& endpoint, const RemoteKey& rkey, uint64_t remote_address,
           std::span<std::byte> destination, Deadline deadline);

}  // namespace swrdma::rdma
