// swrdma-agent: exports the SeaweedFS volumes beside a volume server for one-sided RDMA reads.
#include <csignal>
#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "agent/agent_config.h"
#include "agent/agent_service.h"
#include "agent/http_server.h"
#include "agent/http_util.h"
#include "agent/progress_thread.h"
#include "agent/shutdown_signal.h"
#include "agent/supervisor.h"
#include "agent/volume_set.h"
#include "agent/volume_watcher.h"
#include "index/needle_index.h"
#include "rdma/devices.h"
#include "rdma/ucx_context.h"
#include "rdma/ucx_worker.h"

#ifndef SWRDMA_VERSION
#define SWRDMA_VERSION "0.0.0"
#endif

namespace swrdma::agent {
namespace {

int ListDevices(const AgentConfig& config) {
  auto discovery = rdma::DiscoverRdmaDevices();
  std::printf("%s\n", discovery.Summary().c_str());
  rdma::UcxContextOptions co;
  co.transports = config.transports;
  co.net_devices = config.net_devices;
  auto context = rdma::UcxContext::Create(co);
  if (!context) {
    std::fprintf(stderr, "UCX: %s\n", context.error().ToString().c_str());
    return 1;
  }
  auto resources = rdma::ListUcxResources(*context);
  if (resources) {
    std::printf("UCX transports (UCX_TLS=%s):\n", context->transports().c_str());
    for (const auto& r : *resources)
      std::printf("  %s/%s\n", r.transport.c_str(), r.device.c_str());
  }
  return 0;
}

// Transport names of the selected UCX resources, without duplicates.
std::vector<std::string> TransportNames(const rdma::UcxContext& context) {
  std::vector<std::string> names;
  if (auto res = rdma::ListUcxResources(context)) {
    for (const auto& r : *res) {
      if (std::find(names.begin(), names.end(), r.transport) == names.end()) {
        names.push_back(r.transport);
      }
    }
  }
  return names;
}

void LogScan(const ScanReport& r) {
  for (const auto& m : r.messages)
    spdlog::warn("{}", m);
  if (r.exported || r.removed || r.failed) {
    spdlog::info(
        "scan: {} volumes, {} (re-)exported, {} removed, {} failed, {} retired exports "
        "still mapped",
        r.volumes, r.exported, r.removed, r.failed, r.retired);
  }
}

int Run(const AgentConfig& config) {
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  if (config.list_devices) return ListDevices(config);
  if (config.dirs.empty()) {
    spdlog::error("no volume directory: pass --dir DIR (the volume server's -dir)");
    return 2;
  }
  // Block the shutdown signals before any thread starts, so only the main thread sees them.
  auto signals = ShutdownSignal::Block();
  if (!signals) {
    spdlog::error("{}", signals.error().ToString());
    return 1;
  }

  std::vector<std::string> dirs;
  for (const auto& d : config.dirs)
    dirs.push_back(d.string());
  spdlog::info(
      "swrdma-agent {} starting: dirs={} index={} http={} transports={} progress={} "
      "export={}",
      SWRDMA_VERSION, fmt::join(dirs, ","), config.index_dir.string(), fmt::join(config.http, ","),
      config.transports.value_or("(UCX default)"), ProgressModeName(config.progress_mode),
      ExportModeName(config.export_mode));
  auto discovery = rdma::DiscoverRdmaDevices();
  for (const auto& m : discovery.messages)
    spdlog::info("{}", m);
  for (const auto& d : discovery.devices)
    spdlog::info("RDMA device {}", d.name);

  rdma::UcxContextOptions co;
  co.transports = config.transports;
  co.net_devices = config.net_devices;
  co.wakeup = config.progress_mode != ProgressMode::kBusy;
  auto context = rdma::UcxContext::Create(co);
  if (!context) {
    spdlog::error("starting UCX: {}", context.error().ToString());
    return 1;
  }
  const auto transports = TransportNames(*context);
  spdlog::info("UCX transports in use: {}", fmt::join(transports, ","));
  if (config.require_transports && config.transports) {
    // Every named transport must be there (aliases like "shm" or "all" are not checked).
    std::string_view want = *config.transports;
    for (size_t pos = 0; pos <= want.size();) {
      size_t comma = want.find(',', pos);
      if (comma == std::string_view::npos) comma = want.size();
      std::string t(want.substr(pos, comma - pos));
      if (!t.empty() && t != "shm" && t != "all" &&
          std::find(transports.begin(), transports.end(), t) == transports.end()) {
        spdlog::error(
            "transport '{}' required by --transports is not available here (have: {}); "
            "check the NIC/driver or drop --require-transports",
            t, fmt::join(transports, ","));
        return 1;
      }
      pos = comma + 1;
    }
  }
  auto worker = rdma::UcxWorker::Create(*context);
  if (!worker) {
    spdlog::error("creating the UCX worker: {}", worker.error().ToString());
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(config.index_dir, ec);
  auto index = NeedleIndex::Open(config.index_dir);
  if (!index) {
    spdlog::error("opening the needle index: {}", index.error().ToString());
    return 1;
  }

  VolumeSetOptions vo;
  vo.dirs = config.dirs;
  vo.export_mode = config.export_mode;
  vo.fallback_offset_width = config.offset_width;
  vo.retire_grace = config.retire_grace;
  vo.growth_reserve = config.growth_reserve;
  VolumeSet volumes(**index, *context, vo);
  LogScan(volumes.Scan([](std::string_view what) { spdlog::info("{}", what); }));
  spdlog::info("exporting {} volumes", volumes.snapshot()->volumes.size());

  ProgressOptions po;
  po.mode = config.progress_mode;
  auto progress = ProgressThread::Start(std::move(*worker), po);
  if (!progress) {
    spdlog::error("starting the progress thread: {}", progress.error().ToString());
    return 1;
  }

  ServiceOptions so;
  so.agent_version = SWRDMA_VERSION;
  so.worker_address = (*progress)->worker_address();
  so.transports = transports;
  so.max_lookup_batch = config.max_lookup_batch;
  AgentService service(volumes, so);

  HttpServerOptions ho;
  ho.listen = config.http;
  ho.threads = config.http_threads;
  ho.max_connections = config.max_connections;
  ho.listen_fds = config.listen_fds;
  auto server =
      HttpServer::Start(ho, [&service](const HttpRequest& r) { return service.Handle(r); });
  if (!server) {
    spdlog::error("{}", server.error().ToString());
    return 1;
  }
  for (size_t i = 0; i < config.http.size(); ++i) {
    spdlog::info("serving http on {} (port {})", config.http[i], (*server)->ports()[i]);
  }
  service.SetReady(true);

  WatcherOptions wo;
  wo.rescan_interval = config.rescan_interval;
  wo.on_scan = LogScan;
  auto watcher = VolumeWatcher::Start(volumes, wo);
  if (!watcher) {
    spdlog::error("starting the volume watcher: {}", watcher.error().ToString());
    return 1;
  }

  while (true) {
    const int sig = signals->Wait();
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("{}: draining HTTP and stopping", ShutdownSignal::Name(sig));
      break;
    }
    spdlog::info("{}: nothing to reload yet", ShutdownSignal::Name(sig));
  }
  (*watcher)->Stop();
  service.SetReady(false);
  (*server)->Stop(std::chrono::seconds(5));
  (*progress)->Stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace
}  // namespace swrdma::agent

int main(int argc, char** argv) {
  swrdma::agent::AgentConfig config;
  CLI::App app{"swrdma-agent: exports SeaweedFS volumes for one-sided RDMA reads"};
  swrdma::agent::AddAgentFlags(app, config);
  app.set_version_flag("--version", SWRDMA_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto run = [&config]() -> int {
    try {
      return swrdma::agent::Run(config);
    } catch (const std::exception& e) {
      spdlog::critical("swrdma-agent: unexpected error: {}", e.what());
      return 1;
    }
  };
  try {
    if (config.supervise && !config.list_devices) {
      // Bind once here: every restarted child serves the same sockets (same port, connections
      // wait in the backlog during a restart).
      for (const auto& spec : config.http) {
        auto fd = swrdma::agent::OpenListenSocket(spec);
        if (!fd) {
          spdlog::error("{}", fd.error().ToString());
          return 1;
        }
        config.listen_fds.push_back(*fd);
      }
      return swrdma::agent::RunSupervised(run);
    }
    return run();
  } catch (const std::exception& e) {
    spdlog::critical("swrdma-agent: unexpected error: {}", e.what());
    return 1;
  }
}
