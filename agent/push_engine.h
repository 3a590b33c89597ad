// The push exposure mode's data path: the agent writes needle records into a client's registered
// buffer with ucp_put_nbx (rdma/ucx/put.h) and never hands out a key to its own memory.
//
// The HTTP side (AgentService, POST /v1/push) checks the request and its tokens, resolves the
// needles and lays them out in the client's buffer; Execute then runs the puts on the progress
// thread, which alone owns the worker and the endpoints to clients. Endpoints are created from the
// client's worker address (so same-host clients can use shared memory, as for gets), cached by
// that address, and dropped when they fail, after `idle_timeout`, or beyond `max_peers` (least
// recently used first).
//
// Threat model (docs/security.md): a client learns nothing about the agent's memory but may
// still send a malformed rkey, which UCX 1.13 does not validate (it can crash the data-plane
// process; the supervisor restarts it). Run push mode with --supervise (the default).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <vector>

#include "agent/progress_thread.h"
#include "protocol/status.h"
#include "rdma/ucx/memory_region.h"
#include "rdma/ucx/put.h"
#include "rdma/ucx/ucx_endpoint.h"

namespace swrdma::agent {

struct PushOptions {
  std::chrono::milliseconds timeout{5000};  // one request's puts + flush
  std::chrono::seconds idle_timeout{300};   // an endpoint unused this long is closed
  size_t max_peers = 1024;                  // client endpoints kept open
};

struct PushJob {
  std::vector<uint8_t> client_address;     // packed worker address of the client
  rdma::RemoteRegion buffer;               // the client's buffer (address, length, rkey)
  std::vector<rdma::PutOp> ops;            // from exported (mapped) volume memory
  std::shared_ptr<const void> keep_alive;  // keeps the source mappings alive until done
  // PEER error handling is asked for only when the client's context takes it over shared memory
  // too (PushRequest::peer_failure); otherwise none, and the deadline bounds a dead client.
  bool peer_failure = false;
};

struct PushStats {
  uint64_t jobs = 0;
  uint64_t failures = 0;
  uint64_t bytes = 0;
  uint64_t peers = 0;  // endpoints open now
  uint64_t peers_created = 0;
};

class PushEngine {
 public:
  PushEngine(ProgressThread& progress, PushOptions options);
  ~PushEngine();  // Shutdown()
  PushEngine(const PushEngine&) = delete;
  PushEngine& operator=(const PushEngine&) = delete;

  // Runs `job` on the progress thread and waits for it. Ok once every byte is at the client.
  // Thread-safe (any HTTP thread).
  Status Execute(PushJob job);

  // Closes every client endpoint on the progress thread. Call before ProgressThread::Stop.
  void Shutdown();

  PushStats stats() const;

 private:
  struct Peer;
  Status Run(rdma::UcxWorker& worker, PushJob& job, rdma::Deadline deadline);
  void EvictIdle();

  ProgressThread& progress_;
  PushOptions options_;
  // Touched only on the progress thread.
  std::map<std::vector<uint8_t>, std::unique_ptr<Peer>> peers_;
  bool shut_down_ = false;
  // Counters, also read from HTTP threads.
  mutable std::mutex stats_mu_;
  PushStats stats_;
};

}  // namespace swrdma::agent
