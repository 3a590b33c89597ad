// Client's public methods (client/client.h): each forwards to Client::Impl (client_impl.h), which
// holds the UCX objects; this file is the only place that converts between the two.
#include <utility>

#include "client/agent_http.h"
#include "client/client.h"
#include "client/client_impl.h"

namespace swrdma::client {

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  SWRDMA_ASSIGN_OR_RETURN(HttpUrl url, ParseHttpUrl(options.agent_url, kDefaultAgentPort));
  auto impl =
      std::make_unique<Impl>(options, std::make_unique<AgentHttp>(std::move(url), options.timeout));
  SWRDMA_RETURN_IF_ERROR(impl->ConnectAgent());
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<NeedleData> Client::Read(std::string_view fid, const ReadOptions& options) {
  return impl_->Read(fid, options);
}

std::vector<Result<EcRecordPieces>> Client::ReadEcPieces(std::span<const std::string> fids,
                                                         const ReadOptions& options) {
  return impl_->ReadEcPieces(fids, options);
}

Result<NeedleData> Client::VerifyAssembled(std::string_view fid, std::span<const uint8_t> record,
                                           uint8_t needle_version, uint32_t needle_size,
                                           const ReadOptions& options) {
  return impl_->VerifyAssembled(fid, record, needle_version, needle_size, options);
}

std::vector<Result<NeedleData>> Client::ReadMany(std::span<const std::string> fids,
                                                 const ReadOptions& options) {
  return impl_->ReadMany(fids, options);
}

Result<NeedleView> Client::ReadView(std::string_view fid, const ReadOptions& options) {
  return impl_->ReadView(fid, options);
}

std::vector<Result<NeedleView>> Client::ReadViews(std::span<const std::string> fids,
                                                  const ReadOptions& options) {
  return impl_->ReadViews(fids, options);
}

void Client::ReadEach(std::span<const std::string> fids, const OnRead& on_read,
                      const ReadOptions& options) {
  impl_->ReadEach(fids, on_read, options);
}

const AgentInfo& Client::agent_info() const {
  return impl_->agent_info();
}

Result<VolumeList> Client::Volumes() {
  return impl_->Volumes();
}

Result<std::vector<std::string>> Client::Transports() const {
  return impl_->Transports();
}

const ClientStats& Client::stats() const {
  return impl_->stats();
}

BufferPoolStats Client::buffer_pool_stats() const {
  // Field by field into the client's own struct: the public header does not see rdma/.
  const rdma::BufferPoolStats p = impl_->buffer_pool_stats();
  return {.hits = p.hits,
          .misses = p.misses,
          .evictions = p.evictions,
          .chunks = p.chunks,
          .registered_bytes = p.registered_bytes,
          .buffers_out = p.buffers_out,
          .hugepages = p.hugepages,
          .hugepage_note = p.hugepage_note};
}

}  // namespace swrdma::client
