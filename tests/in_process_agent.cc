#include "tests/in_process_agent.h"

#include <gtest/gtest.h>

#include "http/http_util.h"
#include "rdma/ucx/ucx_worker.h"

namespace swrdma::testing {

InProcessAgent::InProcessAgent(const std::vector<std::filesystem::path>& dirs,
                               const std::filesystem::path& index_dir,
                               InProcessAgentOptions options) {
  rdma::UcxContextOptions co = options.ucx;
  co.wakeup = true;
  co.config.emplace("PROTO_INDIRECT_ID", "on");  // as swrdma-agent (agent_main.cc)
  auto context = rdma::UcxContext::Create(co);
  if (!context) throw std::runtime_error(context.error().ToString());
  context_.emplace(std::move(*context));
  auto worker = rdma::UcxWorker::Create(*context_);
  if (!worker) throw std::runtime_error(worker.error().ToString());
  auto index = NeedleIndex::Open(index_dir);
  if (!index) throw std::runtime_error(index.error().ToString());
  index_ = std::move(*index);
  agent::VolumeSetOptions vo;
  vo.dirs = dirs;
  vo.export_mode = options.mode;
  vo.retire_grace = options.retire_grace;
  vo.growth_reserve = options.growth_reserve;
  volumes_ = std::make_unique<agent::VolumeSet>(*index_, *context_, vo);
  report_ = volumes_->Scan();
  agent::ProgressOptions po;
  po.mode = agent::ProgressMode::kAdaptive;
  progress_ = std::move(*agent::ProgressThread::Start(std::move(*worker), po));
  agent::ServiceOptions so;
  so.agent_version = "test";
  so.worker_address = progress_->worker_address();
  so.transports = {"tcp", "posix", "sysv", "cma"};
  so.shm_peer_failure = context_->shm_peer_failure();  // as swrdma-agent advertises it
  auto auth = agent::ReadAuthorizer::Open({options.jwt_read_key, std::nullopt});
  if (!auth) throw std::runtime_error(auth.error().ToString());
  auth_ = std::move(*auth);
  so.exposure = options.exposure;
  for (const auto& t : so.transports)
    so.exposures[t] = "checked";
  so.auth = auth_.get();
  auto reads = agent::ReadServer::Start(*progress_, *volumes_, auth_.get());
  if (!reads) throw std::runtime_error(reads.error().ToString());
  reads_ = std::move(*reads);
  so.reads = reads_.get();
  if (options.local_socket) {
    agent::LocalServerOptions lo;
    lo.path = *options.local_socket;
    lo.allow_uids = options.local_allow_uids;
    auto local = agent::LocalServer::Start(*volumes_, lo);
    if (!local) throw std::runtime_error(local.error().ToString());
    local_ = std::move(*local);
    so.local = local_.get();
  }
  int read_fd = -1;  // bound first: /v1/info names the port, the server counts into /metrics
  if (options.tcp_read) {
    auto fd = agent::OpenListenSocket("127.0.0.1:0");
    if (!fd) throw std::runtime_error(fd.error().ToString());
    read_fd = *fd;
    so.tcp_read_port = agent::BoundPort(read_fd);
  }
  service_ = std::make_unique<agent::AgentService>(*volumes_, so);
  if (read_fd >= 0) {
    agent::TcpReadServerOptions to = options.tcp_read_options;
    to.listen = "127.0.0.1:0";
    to.listen_fd = read_fd;
    to.registry = service_->metrics().registry();
    auto tcp = agent::TcpReadServer::Start(to, *volumes_, auth_.get());
    if (!tcp) throw std::runtime_error(tcp.error().ToString());
    tcp_reads_ = std::move(*tcp);
  }
  service_->SetReady(true);
  agent::HttpServerOptions ho;
  ho.listen = {"127.0.0.1:" + std::to_string(options.port)};
  auto server = agent::HttpServer::Start(
      ho, [this](const agent::HttpRequest& r) { return service_->Handle(r); });
  if (!server) throw std::runtime_error(server.error().ToString());
  server_ = std::move(*server);
  if (options.watch) {
    agent::WatcherOptions wo;
    wo.rescan_interval = std::chrono::seconds(2);
    auto w = agent::VolumeWatcher::Start(*volumes_, wo);
    if (!w) throw std::runtime_error(w.error().ToString());
    watcher_ = std::move(*w);
  }
}

InProcessAgent::~InProcessAgent() {
  if (watcher_) watcher_->Stop();
  server_->Stop(std::chrono::seconds(2));
  if (local_) local_->Stop();
  if (tcp_reads_) tcp_reads_->Stop();
  // As swrdma-agent: replies still owed to vanished clients mean the worker must not be destroyed.
  const uint64_t unsent = reads_->Shutdown();
  reads_.reset();
  if (unsent > 0) {
    progress_->LeakWorker();  // and its context with it (rdma/ucx/keep_alive.h)
  } else {
    progress_->Stop();
  }
}

std::string InProcessAgent::url() const {
  return "http://127.0.0.1:" + std::to_string(port());
}

uint16_t InProcessAgent::port() const {
  return server_->ports()[0];
}

uint64_t InProcessAgent::generation(uint32_t vid) const {
  auto map = volumes_->snapshot();
  auto it = map->volumes.find(vid);
  return it == map->volumes.end() ? 0 : it->second.exported->generation();
}

}  // namespace swrdma::testing
