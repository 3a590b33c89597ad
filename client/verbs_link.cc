#include "client/verbs_link.h"

#include <algorithm>

#include <fmt/format.h>

#include "protocol/messages.h"

namespace swrdma::client {

namespace verbs = rdma::verbs;

Result<std::unique_ptr<VerbsLink>> VerbsLink::Connect(const VerbsLinkOptions& options) {
  SWRDMA_ASSIGN_OR_RETURN(verbs::Device device, verbs::Device::Open(options.device));
  SWRDMA_ASSIGN_OR_RETURN(verbs::ProtectionDomain pd, verbs::ProtectionDomain::Open(device));
  // At least kMaxEcIntervals: an erasure-coded needle is read in up to that many READs at once.
  const int window = static_cast<int>(std::clamp<size_t>(options.window, kMaxEcIntervals, 1024));
  SWRDMA_ASSIGN_OR_RETURN(verbs::CompletionQueue cq,
                          verbs::CompletionQueue::Open(device, window, /*events=*/true));
  std::unique_ptr<VerbsLink> link(new VerbsLink(std::move(device), std::move(pd), std::move(cq)));
  rdma::BufferPoolOptions po = options.pool;
  po.access = rdma::RegionAccess::kRemoteRead;  // LOCAL_WRITE only: see verbs::Registrar
  SWRDMA_ASSIGN_OR_RETURN(auto pool, rdma::BufferPool::Create(link->registrar_, po));
  link->pool_.emplace(std::move(pool));
  if (options.push) {
    rdma::BufferPoolOptions lo = options.pool;
    lo.access = rdma::RegionAccess::kRemoteReadWrite;  // LOCAL_WRITE | REMOTE_WRITE, never READ
    SWRDMA_ASSIGN_OR_RETURN(auto landing, rdma::BufferPool::Create(link->landing_registrar_, lo));
    link->landing_pool_.emplace(std::move(landing));
  }
  verbs::ConnectionOptions co;
  // Nothing of ours is remotely accessible; with push the agent may WRITE, into the landing
  // pool only (no other memory of ours is registered for it).
  co.remote_access = options.push ? IBV_ACCESS_REMOTE_WRITE : 0;
  co.responder_resources = 0;  // we serve no READs
  co.max_send_wr = static_cast<uint32_t>(window);
  co.timeout = options.timeout;
  auto conn = verbs::Connection::Connect(link->pd_, link->cq_, options.host, options.port, {}, co);
  if (!conn) {
    return Error(conn.error().WithContext(
        fmt::format("connecting over verbs ({}) to the agent at {} port {}", link->device_name(),
                    options.host, options.port)));
  }
  if ((options.grant_required || options.push) && conn->peer_data().size() < kPushNonceBytes) {
    return Error(Code::kCorruption,
                 fmt::format("the agent at {} port {} wants verbs grants or push but its accept "
                             "carried no connection nonce ({} bytes)",
                             options.host, options.port, conn->peer_data().size()));
  }
  link->grant_required_ = options.grant_required;
  link->connection_.emplace(std::move(*conn));
  link->batch_ = std::make_unique<verbs::ReadBatch>(*link->connection_, link->cq_, options.spin);
  return link;
}

std::string VerbsLink::nonce_hex() const {
  std::string out;
  const auto& data = connection_->peer_data();
  for (size_t i = 0; i < std::min<size_t>(16, data.size()); ++i)
    out += fmt::format("{:02x}", data[i]);
  return out;
}

std::array<uint8_t, kPushNonceBytes> VerbsLink::nonce() const {
  std::array<uint8_t, kPushNonceBytes> out{};
  const auto& data = connection_->peer_data();
  std::copy_n(data.begin(), std::min(out.size(), data.size()), out.begin());
  return out;
}

bool VerbsLink::PeerGone(std::chrono::steady_clock::time_point now) {
  if (gone_ || now < next_gone_check_) return gone_;
  next_gone_check_ = now + std::chrono::milliseconds(100);
  gone_ = !connection_ || connection_->PeerGone().value_or(true);
  return gone_;
}

bool VerbsLink::NeedsGrant(std::chrono::steady_clock::time_point now) const {
  return grant_required_ && now + renew_before_ >= granted_until_;
}

void VerbsLink::Granted(std::chrono::steady_clock::time_point now,
                        std::chrono::steady_clock::time_point until) {
  granted_until_ = until;
  if (until == std::chrono::steady_clock::time_point::max()) return;
  renew_before_ =
      std::min<std::chrono::steady_clock::duration>((until - now) / 4, std::chrono::seconds(2));
}

VerbsLink::~VerbsLink() {
  batch_.reset();       // flushes what is still queued before the buffers can go
  connection_.reset();  // the QP: no more DMA into our buffers
}

}  // namespace swrdma::client
