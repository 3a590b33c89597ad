// UCX objects left alive on purpose. UCX 1.13 aborts in ucp_worker_destroy when an endpoint of the
// worker still has requests in flight that we cannot complete (a close or a reply to a peer that
// stopped answering), and ucp_cleanup of a context whose worker still lives frees memory that
// worker uses. When a worker cannot be destroyed safely, it is kept (never progressed again, so
// no UCX callback runs any more) together with its context.
//
// What is kept stays reachable from a global, so LeakSanitizer (ASan builds) does not report it;
// once anything is kept, LSan also stops reporting blocks UCX allocated itself (libucs, libuct,
// libucp, libucm), which UCX references from memory LSan does not scan. Before that, UCX's blocks
// are checked like any other, and every other leak is always reported.
#pragma once

#include <cstdint>

#include <ucp/api/ucp.h>

namespace swrdma::rdma {

// Records that `context` must never be cleaned up (UcxContext's destructor skips ucp_cleanup).
void KeepUcxContextAlive(ucp_context_h context);
bool UcxContextKeptAlive(ucp_context_h context);

// Keeps `object` (a worker's core) reachable forever and counts it as a kept worker.
void KeepUcxObjectAlive(void* object);

// How many workers this process kept alive (0: UCX was torn down normally so far).
uint64_t UcxWorkersKeptAlive();

}  // namespace swrdma::rdma
