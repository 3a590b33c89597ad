// One-sided writes: ucp_put_nbx from local memory into a peer's registered buffer, then a flush.
//
// Used by the agent's push exposure mode: the agent writes needle records into a client's buffer
// (the client sent its rkey) and answers the request only after PutAndFlush returns Ok, i.e.
// after ucp_ep_flush_nbx reported every put complete at the target. On emulated transports the
// client must progress its worker meanwhile (its side of the emulation stores the bytes).
//
// The rules of get.h hold here too: no request is freed before its callback; on the deadline the
// endpoint is aborted (peer error handling completes everything at once); callbacks UCX still owes
// after a bounded grace are handed to the worker together with `keep_alive` (the memory the puts
// read from), never freed early.
//
// Thread: the worker's thread.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "protocol/status.h"
#include "rdma/ucx/memory_region.h"
#include "rdma/ucx/ucx_endpoint.h"
#include "rdma/ucx/ucx_worker.h"

namespace swrdma::rdma {

struct PutOp {
  const void* source = nullptr;  // local bytes, alive until PutAndFlush returns (or keep_alive)
  size_t length = 0;
  uint64_t remote_address = 0;  // inside rkey's region
};

// Posts every op, then flushes the endpoint, progressing the worker until done or `deadline`.
// Ok when every put reached the target. Out-of-range ops are rejected before anything is posted
// (kRdmaRemoteAccess).
Status PutAndFlush(UcxEndpoint& endpoint, const RemoteKey& rkey, std::span<const PutOp> ops,
                   Deadline deadline, std::shared_ptr<const void> keep_alive = nullptr);

}  // namespace swrdma::rdma
