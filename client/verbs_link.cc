#include "client/verbs_link.h"

#include <algorithm>

#include <fmt/format.h>

namespace swrdma::client {

namespace verbs = rdma::verbs;

Result<std::unique_ptr<VerbsLink>> VerbsLink::Connect(const VerbsLinkOptions& options) {
  SWRDMA_ASSIGN_OR_RETURN(verbs::Device device, verbs::Device::Open(options.device));
  SWRDMA_ASSIGN_OR_RETURN(verbs::ProtectionDomain pd, verbs::ProtectionDomain::Open(device));
  const int window = static_cast<int>(std::clamp<size_t>(options.window, 1, 1024));
  SWRDMA_ASSIGN_OR_RETURN(verbs::CompletionQueue cq, verbs::CompletionQueue::Open(device, window));
  std::unique_ptr<VerbsLink> link(new VerbsLink(std::move(device), std::move(pd), std::move(cq)));
  rdma::BufferPoolOptions po = options.pool;
  po.access = rdma::RegionAccess::kRemoteRead;  // LOCAL_WRITE only: see verbs::Registrar
  SWRDMA_ASSIGN_OR_RETURN(auto pool, rdma::BufferPool::Create(link->registrar_, po));
  link->pool_.emplace(std::move(pool));
  verbs::ConnectionOptions co;
  co.remote_access = 0;        // nothing of ours is remotely accessible
  co.responder_resources = 0;  // and we serve no READs
  co.max_send_wr = static_cast<uint32_t>(window);
  co.timeout = options.timeout;
  auto conn = verbs::Connection::Connect(link->pd_, link->cq_, options.host, options.port, {}, co);
  if (!conn) {
    return Error(conn.error().WithContext(
        fmt::format("connecting over verbs ({}) to the agent at {} port {}", link->device_name(),
                    options.host, options.port)));
  }
  link->connection_.emplace(std::move(*conn));
  link->batch_ = std::make_unique<verbs::ReadBatch>(*link->connection_, link->cq_);
  return link;
}

VerbsLink::~VerbsLink() {
  batch_.reset();       // flushes what is still queued before the buffers can go
  connection_.reset();  // the QP: no more DMA into our buffers
}

}  // namespace swrdma::client
