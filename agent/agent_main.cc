// swrdma-agent: exports the SeaweedFS volumes beside a volume server for one-sided RDMA reads.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "agent/agent_config.h"
#include "agent/agent_service.h"
#include "agent/device_monitor.h"
#include "agent/local_server.h"
#include "agent/progress_thread.h"
#include "agent/read_auth.h"
#include "agent/read_server.h"
#include "agent/supervisor.h"
#include "agent/tcp_read_server.h"
#include "agent/token_verifier.h"
#include "agent/ucx_transports.h"
#include "agent/verbs_exporter.h"
#include "agent/volume_set.h"
#include "agent/volume_watcher.h"
#include "http/http_server.h"
#include "http/http_util.h"
#include "http/shutdown_signal.h"
#include "index/needle_index.h"
#include "rdma/devices.h"
#include "rdma/pin_budget.h"
#include "rdma/ucx/ucx_context.h"
#include "rdma/ucx/ucx_resources.h"
#include "rdma/ucx/ucx_worker.h"

#ifndef SWRDMA_VERSION
#define SWRDMA_VERSION "0.0.0"
#endif

namespace swrdma::agent {
namespace {

// What is registered for RDMA right now: every served export's registrations (retired
// generations still in their grace period are not counted), and the exporter's clients.
AgentMetrics::VerbsTotals VerbsTotalsOf(const VerbsExporter& verbs, const rdma::PinBudget& budget,
                                        const VolumeSet& volumes) {
  AgentMetrics::VerbsTotals t;
  t.connections = verbs.connections();
  t.accepted = verbs.accepted();
  t.on_demand_paging = verbs.on_demand();
  t.pinned_limit_bytes = budget.limit();
  t.pinned_bytes = budget.used();
  t.pin_refusals = budget.refusals();
  t.hot_first_swaps = volumes.hot_first().swaps();
  t.grants = verbs.grants();
  t.revocations = verbs.revocations();
  const auto snapshot = volumes.snapshot();
  for (const auto& [vid, entry] : snapshot->volumes) {
    const auto& e = *entry.exported;
    for (const auto& r : e.remote_regions()) {
      t.registered_bytes += r.length;
      ++t.regions;
    }
    if (e.remote() && e.size() > e.remote_covered())
      t.unregistered_bytes += e.size() - e.remote_covered();
  }
  for (const auto& [vid, e] : snapshot->ec) {
    t.registered_bytes += e->remote_registered_bytes();
    t.regions += e->remote_regions().size();
    t.unregistered_bytes += e->remote_unregistered_bytes();
  }
  return t;
}

// --max-pinned-bytes as a number (auto: rdma::ChooseDefaultPinLimit), logged once at start.
uint64_t PinLimitOf(const AgentConfig& config) {
  auto parsed = rdma::ParsePinLimit(config.max_pinned_bytes);  // checked when parsing flags
  if (parsed && *parsed) {
    spdlog::info("verbs: registering at most {} of volume files for RDMA READ (--max-pinned-bytes)",
                 rdma::PinLimitText(**parsed));
    return **parsed;
  }
  const rdma::DefaultPinLimit d = rdma::ChooseDefaultPinLimit();
  spdlog::info(
      "verbs: registering at most {} of volume files for RDMA READ ({}; --max-pinned-bytes); "
      "past it verbs clients read through the agent",
      rdma::PinLimitText(d.bytes), d.why);
  return d.bytes;
}

int ListDevices(const AgentConfig& config) {
  auto discovery = rdma::DiscoverRdmaDevices();
  std::printf("%s\n", discovery.Summary().c_str());
  rdma::UcxContextOptions co;
  bool verbs_named = false;
  co.transports = AgentUcxTransports(WithoutVerbs(config.transports, &verbs_named),
                                     std::getenv("UCX_TLS"), config.insecure_ucx_tcp);
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

  spdlog::info("swrdma-agent {} starting: {}", SWRDMA_VERSION, DescribeConfig(config));
  auto discovery = rdma::DiscoverRdmaDevices();
  for (const auto& m : discovery.messages)
    spdlog::info("{}", m);
  for (const auto& d : discovery.devices)
    spdlog::info("RDMA device {}", d.name);

  // "verbs" in --transports names our own verbs exporter, not a UCX transport.
  bool verbs_named = false;
  const std::optional<std::string> ucx_named = WithoutVerbs(config.transports, &verbs_named);
  rdma::UcxContextOptions co;
  // Without --transports or UCX_TLS: everything but UCX tcp (agent/ucx_transports.h).
  co.transports = AgentUcxTransports(ucx_named, std::getenv("UCX_TLS"), config.insecure_ucx_tcp);
  if (co.transports == kDefaultAgentTransports && config.verbs_port != "off" &&
      ActivePorts(discovery) > 0) {
    // With an RDMA device, UCX's default would take its IB transports too, and ucp_mem_map of
    // every export then registers it there with write and atomic access (UCX ignores the
    // mapping's protection), which fails on file mappings (EFAULT, measured with rxe on 6.1 and
    // 6.12): no volume would be exported at all. Reads from other hosts go over verbs or the
    // read port, so the agent's UCX keeps to shared memory unless transports are named.
    co.transports = kSharedMemoryAgentTransports;
    spdlog::info(
        "RDMA device present: the agent's UCX keeps to shared memory ({}); other hosts read over "
        "verbs or the read port (--transports to choose otherwise)",
        kSharedMemoryAgentTransports);
  }
  co.net_devices = config.net_devices;
  co.wakeup = config.progress_mode != ProgressMode::kBusy;
  co.tcp_segment_bytes = config.tcp_segment_bytes;
  // Peers name our requests and endpoints in their messages (rendezvous replies, acks). With
  // direct ids those names are our raw pointers, and UCX 1.13 trusts them; indirect ids are
  // looked up in a table, so a forged one is refused instead of dereferenced (docs/security.md).
  co.config.emplace("PROTO_INDIRECT_ID", "on");
  // What UCX maps for a client that connected by worker address (its reply endpoint here, with the
  // client's SysV/posix segments attached and the pages our replies wrote into them) stays until
  // a keepalive round finds the client process gone (docs/read-path.md). UCX's 20 s between
  // rounds let short-lived clients pile up: 100 `swrdma get` processes over posix,sysv in 14 s
  // (20 reads of up to 300 KiB each) held +200 SysV mappings and +62 MiB RSS until the next
  // round; with 2 s the RSS peaked at +12 MiB (tests/hostile_peer). Per round UCX checks up to
  // UCX_KEEPALIVE_NUM_EPS (128) endpoints; over shared memory a check reads /proc/PID/stat.
  // The environment's UCX_KEEPALIVE_INTERVAL wins.
  if (std::getenv("UCX_KEEPALIVE_INTERVAL") == nullptr) {
    co.config.emplace("KEEPALIVE_INTERVAL", "2s");
  }
  auto context = rdma::UcxContext::Create(co);
  if (!context) {
    spdlog::error("starting UCX: {}", context.error().ToString());
    return 1;
  }
  const auto transports = TransportNames(*context);
  spdlog::info("UCX transports in use: {}", fmt::join(transports, ","));
  if (Status tcp =
          CheckUcxTcp(transports, "UCX_TLS=" + context->transports(), config.insecure_ucx_tcp);
      !tcp.ok()) {
    spdlog::error("{}", tcp.ToString());
    return 1;
  }
  if (config.require_transports && ucx_named) {
    // Every named transport must be there (aliases like "shm" or "all" are not checked).
    std::string_view want = *ucx_named;
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
  // Read authorization before anything is served: a bad security.toml stops the start.
  // The key is found where the volume server finds it (issue 15, 11): not finding it must not
  // silently run open beside a volume server that checks tokens.
  // With a key, main() started the verifier process that holds it (agent/token_verifier.h) and
  // this image asks it: the key is never in this process.
  ReadKeySource key_source;
  Result<std::unique_ptr<ReadAuthorizer>> auth = Error(Code::kInternal, "not opened");
  if (const char* fd = std::getenv(kVerifierFdEnv); fd != nullptr && !config.no_read_auth) {
    auth = ReadAuthorizer::OpenRemote(std::atoi(fd));
    if (!auth) {
      spdlog::error("read authorization: {}", auth.error().ToString());
      return 1;
    }
  } else {
    key_source = FindReadKeySource(config.jwt_read_key, config.security_toml, ProcessEnvironment(),
                                   WeedConfigDirs(ProcessEnvironment()("HOME")));
    auth = ReadAuthorizer::Open(key_source);
  }
  if (config.no_read_auth) {
    if (!auth || (*auth)->enabled()) {
      spdlog::warn(
          "--no-read-auth: NOT checking read tokens although {} has a read key; anyone "
          "reaching this agent reads every needle",
          auth ? (*auth)->source() : key_source.security_toml->string());
    }
    auth = ReadAuthorizer::Open(ReadKeySource{});
  } else if (!auth) {
    spdlog::error("read authorization: {} (or pass --no-read-auth to serve without checks)",
                  auth.error().ToString());
    return 1;
  }
  // Every transport of this agent is a UCX one without keys a NIC enforces (tcp, shared memory):
  // there the agent checks every read, whatever was asked for. One-sided `region` and `push`
  // need verbs (docs/security.md).
  const std::string asked = config.exposure.value_or("checked");
  if ((*auth)->enabled() && asked == "region" && !config.region_with_tokens) {
    // A token covers one fid, an rkey the whole volume (issue 15, 12): where region is in force
    // that defeats the tokens, so it has to be asked for explicitly, whatever the transports.
    spdlog::error(
        "--exposure region with read tokens on would give any holder of a token for one fid the "
        "key to its whole volume; use --exposure checked (the default), or add "
        "--region-with-tokens if every client is trusted (docs/security.md)");
    return 1;
  }
  std::map<std::string, std::string> exposures;
  for (const auto& t : transports)
    exposures[t] = "checked";
  spdlog::info("read tokens: {}; exposure: checked on {}", (*auth)->source(),
               fmt::join(transports, ","));
  if (asked != "checked") {
    spdlog::warn(
        "--exposure {} needs an RDMA device whose NIC enforces keys (verbs); UCX transports "
        "({}) cannot enforce them, so every read over them is a checked read (docs/security.md)",
        asked, fmt::join(transports, ","));
  }
  if (std::find(transports.begin(), transports.end(), "tcp") != transports.end()) {
    spdlog::warn(
        "--insecure-ucx-tcp: UCX tcp is ON. ANY PEER THAT REACHES THE AGENT'S UCX TCP PORT CAN "
        "WRITE AGENT MEMORY (UCX's own PUT_REQ frame, not our protocol); only for a network where "
        "every host is trusted. Other hosts read over --read-port without it (docs/security.md, "
        "'tcp and untrusted peers')");
  }

  // One-sided RDMA READ where a device with an active port exists (agent/verbs_exporter.h).
  // Declared before the volume set: its registrations live in the exporter's protection domain
  // and go first.
  ExportMode export_mode = config.export_mode;
  auto verbs_started = StartAgentVerbs(config, (*auth)->enabled(), verbs_named, export_mode);
  if (!verbs_started) {
    spdlog::error("{}", verbs_started.error().ToString());
    return 1;
  }
  std::unique_ptr<VerbsExporter> verbs = std::move(*verbs_started);

  std::error_code ec;
  std::filesystem::create_directories(config.index_dir, ec);
  NeedleIndexOptions index_options;
  index_options.lookup_cache_entries = config.index_cache_entries;
  auto index = NeedleIndex::Open(config.index_dir, index_options);
  if (!index) {
    spdlog::error("opening the needle index: {}", index.error().ToString());
    return 1;
  }

  // Before the volume set: its registrations hold reservations against it.
  std::optional<rdma::PinBudget> pin_budget;
  if (verbs) {
    if (verbs->on_demand()) {
      // Nothing is pinned; the budget still exists (and is reported) but no registration
      // reserves against it.
      pin_budget.emplace(rdma::PinBudget::kUnlimited);
      spdlog::info(
          "verbs: on-demand paging: registrations pin nothing; every volume is "
          "registered and --max-pinned-bytes ({}) does not apply",
          config.max_pinned_bytes);
    } else {
      pin_budget.emplace(PinLimitOf(config));
    }
  }
  VolumeSetOptions vo;
  vo.dirs = config.dirs;
  vo.export_mode = export_mode;
  vo.fallback_offset_width = config.offset_width;
  vo.retire_grace = config.retire_grace;
  vo.growth_reserve = config.growth_reserve;
  if (verbs) {
    vo.remote = &verbs->registrar();
    vo.pin_budget = &*pin_budget;
    vo.hot_first.warmup = config.hot_first_warmup;
    vo.hot_first.min_dwell = config.hot_first_dwell;
  }
  VolumeSet volumes(**index, *context, vo);
  const ScanReport initial_scan =
      volumes.Scan([](std::string_view what) { spdlog::info("{}", what); });
  LogScan(initial_scan);
  spdlog::info("exporting {} volumes", volumes.snapshot()->volumes.size());

  ProgressOptions po;
  po.mode = config.progress_mode;
  auto progress = ProgressThread::Start(std::move(*worker), po);
  if (!progress) {
    spdlog::error("starting the progress thread: {}", progress.error().ToString());
    return 1;
  }

  auto reads = ReadServer::Start(**progress, volumes, auth->get());
  if (!reads) {
    spdlog::error("{}", reads.error().ToString());
    return 1;
  }

  auto local = StartLocalServer(config, volumes, (*auth)->enabled());
  if (!local) {
    spdlog::error("{}", local.error().ToString());
    return 1;
  }

  ServiceOptions so;
  so.agent_version = SWRDMA_VERSION;
  so.local = local->get();
  so.worker_address = (*progress)->worker_address();
  so.transports = transports;
  so.shm_peer_failure = context->shm_peer_failure();
  so.max_lookup_batch = config.max_lookup_batch;
  so.exposure = "checked";
  if (verbs) {
    // region: keys a NIC enforces; push: the agent checks every fid and writes the records.
    // The UCX and tcp paths stay checked either way.
    so.exposure = verbs->push() ? "push" : "region";
    exposures["verbs"] = so.exposure;
    so.transports.push_back("verbs");
    so.verbs_grant = [&verbs](std::span<const uint8_t> nonce,
                              std::optional<int64_t> token_exp) -> Result<std::optional<int64_t>> {
      VerbsNonce n{};
      if (nonce.size() != n.size()) return Error(Code::kInvalidArgument, "nonce size");
      std::copy(nonce.begin(), nonce.end(), n.begin());
      SWRDMA_ASSIGN_OR_RETURN(auto until, verbs->Grant(n, token_exp));
      if (!until) return std::optional<int64_t>();
      return std::optional<int64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(until->time_since_epoch()).count());
    };
    so.verbs_info = [&verbs, &pin_budget, &volumes] {
      nlohmann::json j = verbs->Info();
      const auto t = VerbsTotalsOf(*verbs, *pin_budget, volumes);
      j["registered_bytes"] = t.registered_bytes;
      j["regions"] = t.regions;
      // null: no limit
      j["max_pinned_bytes"] = t.pinned_limit_bytes == rdma::PinBudget::kUnlimited
                                  ? nlohmann::json()
                                  : nlohmann::json(t.pinned_limit_bytes);
      j["pinned_bytes"] = t.pinned_bytes;
      j["unregistered_bytes"] = t.unregistered_bytes;
      j["hot_first_swaps"] = t.hot_first_swaps;
      return j;
    };
  }
  so.exposures = std::move(exposures);
  so.auth = auth->get();
  so.reads = reads->get();
  // Checked reads for peers on other hosts, over our own framing on plain TCP (UCX tcp cannot
  // face a hostile peer). Bound here, served once the metrics exist: /v1/info names the port.
  auto read_listen = ReadListenAddress(config.read_port, config.http.front());
  if (!read_listen) {
    spdlog::error("--read-port: {}", read_listen.error().ToString());
    return 1;
  }
  int read_fd = -1;
  if (*read_listen) {
    auto fd = OpenListenSocket(**read_listen);
    if (!fd) {
      spdlog::error("checked reads over tcp: {} (or pass --read-port off)", fd.error().ToString());
      return 1;
    }
    read_fd = *fd;
    so.tcp_read_port = BoundPort(read_fd);
    so.exposures["tcp_read"] = "checked";  // our framing, the agent checks every read
  }
  AgentService service(volumes, so);
  service.metrics().SetTransports(transports);
  if (verbs) {
    service.metrics().SetVerbsSource(
        [&verbs, &pin_budget, &volumes] { return VerbsTotalsOf(*verbs, *pin_budget, volumes); });
  }
  std::unique_ptr<TcpReadServer> tcp_reads;
  if (read_fd < 0 && verbs && verbs->push()) {
    spdlog::warn(
        "verbs push: clients offer their landing buffers with read requests on the TCP read "
        "port, which is off (--read-port off): verbs clients will read nothing; give the agent "
        "a --read-port");
  }
  if (read_fd >= 0) {
    TcpReadServerOptions to;
    to.listen = **read_listen;
    to.listen_fd = read_fd;
    to.threads = config.http_threads;
    to.max_connections = config.max_connections;
    to.registry = service.metrics().registry();
    // Push over verbs: requests on this port may offer a landing buffer on a verbs connection.
    if (verbs && verbs->push()) to.pusher = verbs.get();
    auto started = TcpReadServer::Start(to, volumes, auth->get());
    if (!started) {
      spdlog::error("checked reads over tcp: {}", started.error().ToString());
      return 1;
    }
    tcp_reads = std::move(*started);
    spdlog::info("serving checked reads over tcp on {} (port {})", **read_listen,
                 tcp_reads->port());
  }
  service.metrics().ObserveScan(initial_scan);

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
  service.metrics().SetHttpStatsSource([s = server->get()] { return s->Stats(); });
  service.SetReady(true);

  WatcherOptions wo;
  wo.rescan_interval = config.rescan_interval;
  wo.on_scan = [&service](const ScanReport& r) {
    LogScan(r);
    service.metrics().ObserveScan(r);
  };
  auto watcher = VolumeWatcher::Start(volumes, wo);
  if (!watcher) {
    spdlog::error("starting the volume watcher: {}", watcher.error().ToString());
    return 1;
  }

  // RDMA hot-plug: logs what changes against the discovery logged above (nothing when the host
  // has no devices and still has none) and keeps swrdma_rdma_devices current.
  auto set_device_metrics = [&service](const rdma::RdmaDiscovery& d) {
    service.metrics().SetRdmaDevices(d.devices.size(), ActivePorts(d));
  };
  std::unique_ptr<DeviceMonitor> device_monitor;
  if (config.device_rescan_interval.count() > 0) {
    DeviceMonitorOptions dm;
    dm.interval = config.device_rescan_interval;
    dm.on_scan = set_device_metrics;
    auto started = DeviceMonitor::Start(discovery, dm);
    if (!started) {
      spdlog::error("starting the RDMA device monitor: {}", started.error().ToString());
      return 1;
    }
    device_monitor = std::move(*started);
  } else {
    set_device_metrics(discovery);
  }

  while (true) {
    const int sig = signals->Wait();
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("{}: draining HTTP and stopping", ShutdownSignal::Name(sig));
      break;
    }
    if (sig == SIGHUP) {
      Status reloaded = (*auth)->Reload();
      if (reloaded.ok()) {
        spdlog::info("SIGHUP: read key reloaded; read tokens: {}", (*auth)->source());
      } else {
        spdlog::error("SIGHUP: reloading the read key failed, the previous key stays: {}",
                      reloaded.ToString());
      }
      continue;
    }
    spdlog::info("{}: ignored", ShutdownSignal::Name(sig));
  }
  (*watcher)->Stop();
  if (device_monitor) device_monitor->Stop();
  service.SetReady(false);
  (*server)->Stop(std::chrono::seconds(5));
  if (*local) (*local)->Stop();
  if (tcp_reads) tcp_reads->Stop();
  // The checked-read handler leaves the worker on the progress thread, before it stops; replies UCX
  // still owes to clients that vanished mean the worker (and its context) must not be destroyed:
  // UCX would abort.
  const uint64_t unsent = (*reads)->Shutdown();
  reads->reset();
  if (unsent > 0) {
    (*progress)->LeakWorker();  // and its context with it (rdma/ucx/keep_alive.h)
  } else {
    (*progress)->Stop();
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace
}  // namespace swrdma::agent

int main(int argc, char** argv) {
  swrdma::agent::AgentConfig config;
  CLI::App app{"swrdma-agent: exports SeaweedFS volumes for one-sided RDMA reads"};
  app.set_version_flag("--version", SWRDMA_VERSION);
  try {
    auto sources = swrdma::agent::ParseAgentConfig(app, config,
                                                   std::vector<std::string>(argv + 1, argv + argc),
                                                   swrdma::agent::ProcessEnvironment());
    if (!sources) {
      spdlog::error("{}", sources.error().message());
      return 2;
    }
    if (!sources->env.empty()) {
      spdlog::info("settings from the environment: {}", fmt::join(sources->env, ","));
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // The read key goes to a process of its own before anything serves (agent/token_verifier.h):
  // with a key found this call does not return; this image is replaced by one without it.
  swrdma::agent::SeparateReadKey(config, argv);
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
