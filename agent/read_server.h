// Checked reads (protocol/read_messages.h) over UCX active messages: the data path for clients
// without an RDMA device that enforces keys (tcp, shared memory).
//
// The agent's worker takes read requests as active messages. For each fid the server resolves
// the record in the index, checks the read token, checks that the record lies inside the
// exported mapping of the current generation, and answers with one reply message whose data is
// the whole record, sent straight from the mapping (UCX copies it into its send buffers or sends
// it zero-copy; no staging copy of ours). Nothing else of the agent's memory is reachable: the
// context that clients talk to asks for no RMA or atomics (their emulation in UCX serves any
// address a peer names), so a peer that ignores this protocol gets no memory at all.
//
// Everything runs on the progress thread, which owns the worker: the handler is registered
// there, called from ucp_worker_progress, and posts its sends from there. Replies keep their
// export alive (shared_ptr) until UCX reports the send complete, so a vacuum or retirement during
// a send never unmaps bytes UCX is still reading.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "agent/progress_thread.h"
#include "agent/read_auth.h"
#include "agent/volume_set.h"
#include "protocol/status.h"

namespace swrdma::agent {

struct ReadServerStats {
  uint64_t requests = 0;         // well-formed requests
  uint64_t malformed = 0;        // requests dropped: bad encoding, no reply endpoint, too large
  uint64_t replies_ok = 0;       // records sent
  uint64_t replies_refused = 0;  // fids answered with another status
  uint64_t denied = 0;           // of those, refused for their token
  uint64_t bytes = 0;            // record bytes sent
  uint64_t send_failures = 0;    // replies UCX could not send (peer gone)
  uint64_t inflight = 0;         // replies UCX has not finished sending
};

class ReadServer {
 public:
  // Registers the request handler on `progress`'s worker. `auth` may be null (no tokens
  // needed). The volume set and the authorizer must outlive the server.
  static Result<std::unique_ptr<ReadServer>> Start(ProgressThread& progress,
                                                   const VolumeSet& volumes,
                                                   const ReadAuthorizer* auth);
  // Unregisters the handler (on the progress thread) and gives replies in flight up to 3 s to
  // finish or fail. Returns how many are still unsent: then the worker must not be destroyed
  // (ProgressThread::LeakWorker), UCX 1.13 would abort. Idempotent.
  uint64_t Shutdown();
  // Shutdown(); replies in flight free their own state on completion.
  ~ReadServer();
  ReadServer(const ReadServer&) = delete;
  ReadServer& operator=(const ReadServer&) = delete;

  ReadServerStats stats() const;

  struct Counters;  // shared with replies in flight (they may complete after the server is gone)

 private:
  explicit ReadServer(ProgressThread& progress);

  ProgressThread& progress_;
  std::shared_ptr<Counters> counters_;
  void* handler_ = nullptr;  // the AM callback's state (read_server.cc)
  bool registered_ = false;
};

}  // namespace swrdma::agent
