#include "agent/push_engine.h"

#include <future>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace swrdma::agent {

struct PushEngine::Peer {
  rdma::UcxEndpoint endpoint;
  std::chrono::steady_clock::time_point last_used;
};

PushEngine::PushEngine(ProgressThread& progress, PushOptions options)
    : progress_(progress), options_(options) {}

PushEngine::~PushEngine() {
  Shutdown();
}

PushStats PushEngine::stats() const {
  std::lock_guard lock(stats_mu_);
  return stats_;
}

Status PushEngine::Execute(PushJob job) {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> done = promise->get_future();
  const rdma::Deadline deadline = rdma::DeadlineIn(options_.timeout);
  auto shared_job = std::make_shared<PushJob>(std::move(job));
  Status posted = progress_.Post([this, promise, shared_job, deadline](rdma::UcxWorker& worker) {
    promise->set_value(Run(worker, *shared_job, deadline));
  });
  if (!posted.ok()) return posted.WithContext("push");
  // The task itself gives up at `deadline`; the slack covers the aborting it may have to do.
  if (done.wait_until(deadline + std::chrono::seconds(3)) != std::future_status::ready) {
    return Status(Code::kTimeout, "push: the progress thread did not run the request in time");
  }
  try {
    return done.get();
  } catch (const std::future_error&) {  // dropped because the agent is stopping
    return Status(Code::kUnavailable, "push: the agent is stopping");
  }
}

Status PushEngine::Run(rdma::UcxWorker& worker, PushJob& job, rdma::Deadline deadline) {
  if (shut_down_) return Status(Code::kUnavailable, "push: the agent is stopping");
  EvictIdle();
  uint64_t bytes = 0;
  for (const auto& op : job.ops)
    bytes += op.length;
  auto count = [&](bool ok, bool created) {
    std::lock_guard lock(stats_mu_);
    ++stats_.jobs;
    if (!ok) ++stats_.failures;
    if (ok) stats_.bytes += bytes;
    if (created) ++stats_.peers_created;
    stats_.peers = peers_.size();
  };

  auto it = peers_.find(job.client_address);
  if (it != peers_.end() && !it->second->endpoint.status().ok()) {
    peers_.erase(it);  // failed: force-closed by its destructor
    it = peers_.end();
  }
  bool created = false;
  if (it == peers_.end()) {
    rdma::UcxEndpointOptions eo;
    eo.error_handling =
        job.peer_failure ? rdma::PeerErrorHandling::kPreferPeer : rdma::PeerErrorHandling::kNone;
    auto ep = rdma::UcxEndpoint::Connect(worker, job.client_address, eo);
    if (!ep) {
      count(false, false);
      return ep.error().WithContext("push: connecting to the client's worker");
    }
    auto peer = std::make_unique<Peer>(Peer{std::move(*ep), {}});
    it = peers_.emplace(job.client_address, std::move(peer)).first;
    created = true;
  }
  Peer& peer = *it->second;
  peer.last_used = std::chrono::steady_clock::now();

  Status s;
  {
    auto rkey = rdma::RemoteKey::Unpack(peer.endpoint, job.buffer);
    if (!rkey) {
      s = rkey.error().WithContext("push: the client's buffer key");
    } else {
      s = rdma::PutAndFlush(peer.endpoint, *rkey, job.ops, deadline, job.keep_alive);
    }
  }  // the rkey goes before the endpoint may
  if (!s.ok()) {
    peers_.erase(job.client_address);
    s = s.WithContext("push");
  }
  count(s.ok(), created);
  return s;
}

void PushEngine::EvictIdle() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (now - it->second->last_used > options_.idle_timeout) {
      it = peers_.erase(it);
    } else {
      ++it;
    }
  }
  while (peers_.size() >= options_.max_peers) {
    auto oldest = peers_.begin();
    for (auto i = peers_.begin(); i != peers_.end(); ++i) {
      if (i->second->last_used < oldest->second->last_used) oldest = i;
    }
    peers_.erase(oldest);
  }
}

void PushEngine::Shutdown() {
  auto promise = std::make_shared<std::promise<void>>();
  auto done = promise->get_future();
  Status posted = progress_.Post([this, promise](rdma::UcxWorker&) {
    shut_down_ = true;
    peers_.clear();
    promise->set_value();
  });
  if (posted.ok() && done.wait_for(std::chrono::seconds(10)) == std::future_status::ready) return;
  // The progress thread is gone (or stuck): its worker may be destroyed already, so closing the
  // endpoints here would touch freed UCX state. Leak them instead; the process is stopping.
  for (auto& [address, peer] : peers_)
    peer.release();
  peers_.clear();
}

}  // namespace swrdma::agent
