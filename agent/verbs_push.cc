// Push over verbs (VerbsExporter as a RecordPusher): the agent RDMA WRITEs checked records from
// its exports' registrations into a client's landing buffer.
//
// A push is asynchronous: Push queues it and returns, and one thread (PushLoop) posts the writes
// of every push in flight and polls their completions. A WRITE completes within microseconds on
// a NIC; a client that stops acknowledging (gone, or hostile) makes it wait until the push
// times out (push_timeout), and that wait must not take a thread of the read servers, which
// serve every other client. Pushes on one connection run one at a time, in order: they share
// its send queue and completion queue.
#include <algorithm>
#include <array>

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include "agent/verbs_exporter.h"
#include "rdma/verbs/verbs_status.h"

namespace swrdma::agent {

namespace verbs = rdma::verbs;

std::optional<PushWrite> VerbsExporter::Source(const ExportedVolume& source,
                                               std::span<const uint8_t> record) const {
  const uint64_t offset = reinterpret_cast<uint64_t>(record.data()) - source.base_address();
  auto registration = source.RemoteRegistrationFor(offset, record.size());
  // The export's remote registrations are this exporter's (registrar()): a local key here.
  if (!registration || record.size() > UINT32_MAX) return std::nullopt;
  PushWrite w;
  w.source = record;
  w.local_key = verbs::LocalKeyOf(*registration);
  w.registration = std::move(registration);
  return w;
}

void VerbsExporter::Push(const PushLanding& landing, std::vector<PushWrite> writes, PushDone done) {
  if (!options_.push) {
    return done(Status(Code::kUnsupported, "push: this agent's verbs export is not in push mode"));
  }
  VerbsNonce nonce{};
  std::copy(landing.nonce.begin(), landing.nonce.end(), nonce.begin());
  std::shared_ptr<Client> client;
  {
    std::lock_guard lock(mu_);
    for (const auto& c : clients_) {
      // Constant time per candidate, as for grants: the nonce names the connection.
      if (CRYPTO_memcmp(c->nonce.data(), nonce.data(), nonce.size()) == 0) {
        client = c;
        break;
      }
    }
  }
  if (!client) {
    return done(Status(Code::kNotFound, "push: no verbs connection with that nonce (it ended?)"));
  }
  if (writes.empty()) return done(Status::Ok());
  auto job = std::make_unique<PushJob>();
  job->client = std::move(client);
  job->landing = landing;
  job->writes = std::move(writes);
  job->done = std::move(done);
  {
    std::lock_guard lock(push_mu_);
    if (stop_ || pushes_stopped_) {
      job->done(Status(Code::kCancelled, "push: the agent is stopping"));
      return;
    }
    push_queue_.push_back(std::move(job));
    pushes_in_flight_.fetch_add(1, std::memory_order_relaxed);
  }
  push_cv_.notify_one();
}

void VerbsExporter::StopPushes(std::chrono::milliseconds wait) {
  {
    std::lock_guard lock(push_mu_);
    pushes_stopped_ = true;
  }
  push_cv_.notify_all();
  const auto until = std::chrono::steady_clock::now() + wait;
  while (pushes_in_flight() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

size_t VerbsExporter::pushes_in_flight() const {
  return pushes_in_flight_.load(std::memory_order_relaxed);
}

void VerbsExporter::EndPush(PushJob& job, Status status) {
  Client& c = *job.client;
  if (status.ok()) {
    ++pushes_;
    pushed_bytes_ += job.bytes;
  } else if (job.started) {
    // The QP may still hold work requests: into the error state, so that no DMA follows, and
    // Sweep ends the connection (the client connects again).
    (void)c.connection.Fail();
    c.broken = true;
    ++push_failures_;
  }
  pushes_in_flight_.fetch_sub(1, std::memory_order_relaxed);
  PushDone done = std::move(job.done);
  done(std::move(status));
}

bool VerbsExporter::Advance(PushJob& job, bool& progress) {
  Client& c = *job.client;
  if (!job.started) {
    if (c.broken) {
      EndPush(job, Status(Code::kUnavailable, "push: the connection failed earlier"));
      return true;
    }
    job.started = true;
    job.deadline = std::chrono::steady_clock::now() + options_.push_timeout;
  }
  while (job.posted < job.writes.size() && job.posted - job.completed < kPushDepth) {
    const PushWrite& w = job.writes[job.posted];
    if (Status s =
            c.connection.PostWrite(std::as_bytes(w.source), w.local_key,
                                   job.landing.address + w.offset, job.landing.rkey, job.posted);
        !s.ok()) {
      EndPush(job, s.WithContext("push: posting an RDMA WRITE"));
      return true;
    }
    job.bytes += w.source.size();
    ++job.posted;
    progress = true;
  }
  std::array<ibv_wc, kPushDepth> wc{};
  auto n = c.cq->Poll(wc);
  if (!n) {
    EndPush(job, n.error());
    return true;
  }
  for (size_t i = 0; i < *n; ++i) {
    if (wc[i].status != IBV_WC_SUCCESS) {
      EndPush(job, verbs::FromWc(wc[i].status, "push: RDMA WRITE into the client's landing"));
      return true;
    }
  }
  job.completed += *n;
  if (*n > 0) progress = true;
  if (job.completed >= job.writes.size()) {
    EndPush(job, Status::Ok());
    return true;
  }
  if (std::chrono::steady_clock::now() >= job.deadline) {
    EndPush(job, Status(Code::kTimeout,
                        fmt::format("push: {} of {} RDMA WRITEs did not complete within {} ms",
                                    job.posted - job.completed, job.writes.size(),
                                    options_.push_timeout.count())));
    return true;
  }
  return false;
}

void VerbsExporter::PushLoop() {
  // In arrival order; only the first push of each connection runs.
  std::vector<std::unique_ptr<PushJob>> jobs;
  uint64_t idle = 0;
  for (;;) {
    {
      std::unique_lock lock(push_mu_);
      if (jobs.empty() && push_queue_.empty() && !stop_) {
        push_cv_.wait_for(lock, std::chrono::milliseconds(200));
      }
      while (!push_queue_.empty()) {
        jobs.push_back(std::move(push_queue_.front()));
        push_queue_.pop_front();
      }
      if (stop_) break;
      if (pushes_stopped_) {  // StopPushes: end what is in flight, take no more
        lock.unlock();
        for (auto& job : jobs)
          EndPush(*job, Status(Code::kCancelled, "push: the read server is stopping"));
        jobs.clear();
        continue;
      }
    }
    bool progress = false;
    std::vector<const Client*> busy;  // connections whose turn is taken this pass
    for (auto& job : jobs) {
      const Client* c = job->client.get();
      if (std::find(busy.begin(), busy.end(), c) != busy.end()) continue;
      busy.push_back(c);
      if (Advance(*job, progress)) {
        job.reset();
        progress = true;
      }
    }
    std::erase(jobs, nullptr);
    // A NIC completes a WRITE within microseconds; Soft-RoCE (the kernel) may take longer.
    if (progress) {
      idle = 0;
    } else if (++idle > 256) {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
  // Stopping: what is still in flight ends here (its connections are disconnected next).
  for (auto& job : jobs)
    EndPush(*job, Status(Code::kCancelled, "push: the agent is stopping"));
  std::lock_guard lock(push_mu_);
  for (auto& job : push_queue_)
    EndPush(*job, Status(Code::kCancelled, "push: the agent is stopping"));
  push_queue_.clear();
}

}  // namespace swrdma::agent
