// The client's verbs link to one agent (agent/verbs_exporter.h): device, protection domain,
// completion queue, the registered buffer pool READs land in, the RC connection and the READ
// window on it. Members are declared in the order they must be built; they go in reverse: the
// window (which waits out or flushes its READs), the connection (its QP: no more DMA), the
// buffers' registrations, then the rest.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "protocol/read_messages.h"
#include "protocol/status.h"
#include "rdma/buffer_pool.h"
#include "rdma/verbs/completion_queue.h"
#include "rdma/verbs/connection.h"
#include "rdma/verbs/device.h"
#include "rdma/verbs/read_batch.h"
#include "rdma/verbs/registrar.h"

namespace swrdma::client {

struct VerbsLinkOptions {
  std::string device;  // empty: the first device whose port 1 is active
  std::string host;    // the agent's address (its HTTP URL's host)
  uint16_t port = 0;   // /v1/info "verbs" "port"
  std::chrono::milliseconds timeout{5000};
  size_t window = 64;           // READs outstanding at once (the send queue's depth)
  bool grant_required = false;  // /v1/info verbs.grant == "token"
  // /v1/info verbs.mode == "push": the agent RDMA WRITEs records into a landing pool (the one
  // memory of ours registered REMOTE_WRITE; this QP's responder allows WRITE and nothing else).
  bool push = false;
  rdma::BufferPoolOptions pool;
  // How long a wait for READs polls before it sleeps on the CQ's completion channel (a client
  // waiting on long READs, or on Soft-RoCE whose device is the kernel on the same cores, should
  // not hold a core); a busy window completes within it and never sleeps.
  std::chrono::microseconds spin = rdma::verbs::ReadBatch::kDefaultSpin;
};

class VerbsLink {
 public:
  // kRdmaNoDevice when this host has no RDMA device; kUnavailable when the agent refuses.
  static Result<std::unique_ptr<VerbsLink>> Connect(const VerbsLinkOptions& options);
  VerbsLink(const VerbsLink&) = delete;
  VerbsLink& operator=(const VerbsLink&) = delete;
  ~VerbsLink();

  rdma::BufferPool& pool() { return *pool_; }
  rdma::verbs::ReadBatch& batch() { return *batch_; }
  const std::string& device_name() const { return device_.name(); }
  // A READ failed (remote access error: a retired key) or timed out: the QP is in error.
  bool broken() const { return batch_->broken(); }
  // True once the agent ended the connection (rdma_cm said so; does not wait): its grant
  // expired, or it restarted. READs posted now would only time out. Looks at most every 100 ms
  // (a poll(2) per round would cost a small READ a fifth of its time on a NIC).
  bool PeerGone(std::chrono::steady_clock::time_point now);
  // The nonce the agent's accept carried (hex): what POST /v1/verbs/grant names.
  std::string nonce_hex() const;
  // The same bytes: what a push request names (protocol/read_messages.h PushLanding).
  std::array<uint8_t, kPushNonceBytes> nonce() const;
  bool push() const { return landing_pool_.has_value(); }
  // Push: where the agent writes records (LOCAL_WRITE | REMOTE_WRITE); absent otherwise.
  rdma::BufferPool* landing_pool() { return landing_pool_ ? &*landing_pool_ : nullptr; }
  // Read tokens on (/v1/info verbs.grant "token"): this connection READs only while granted.
  bool grant_required() const { return grant_required_; }
  // Whether a grant is needed before the next READs: none yet, or less than a quarter of the
  // last one (at most 2 s) left.
  bool NeedsGrant(std::chrono::steady_clock::time_point now) const;
  // `until`: when the agent ends the grant (time_point::max(): never).
  void Granted(std::chrono::steady_clock::time_point now,
               std::chrono::steady_clock::time_point until);

 private:
  VerbsLink(rdma::verbs::Device device, rdma::verbs::ProtectionDomain pd,
            rdma::verbs::CompletionQueue cq)
      : device_(std::move(device)),
        pd_(std::move(pd)),
        cq_(std::move(cq)),
        registrar_(pd_, rdma::verbs::RegistrarRole::kReader),
        landing_registrar_(pd_, rdma::verbs::RegistrarRole::kLanding) {}

  bool grant_required_ = false;
  bool gone_ = false;
  std::chrono::steady_clock::time_point next_gone_check_{};
  std::chrono::steady_clock::time_point granted_until_{};  // epoch: never granted
  std::chrono::steady_clock::duration renew_before_{};
  rdma::verbs::Device device_;
  rdma::verbs::ProtectionDomain pd_;
  rdma::verbs::CompletionQueue cq_;
  rdma::verbs::Registrar registrar_;
  rdma::verbs::Registrar landing_registrar_;
  std::optional<rdma::BufferPool> pool_;
  std::optional<rdma::BufferPool> landing_pool_;  // push only
  std::optional<rdma::verbs::Connection> connection_;
  std::unique_ptr<rdma::verbs::ReadBatch> batch_;
};

}  // namespace swrdma::client
