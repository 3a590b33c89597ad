#include "client/cli/sidecar_command.h"

#include <csignal>
#include <cstdio>
#include <memory>

#include <CLI/CLI.hpp>

#include "client/cli/command_error.h"
#include "http/shutdown_signal.h"
#include "sidecar/sidecar.h"

namespace swrdma::cli {
namespace {

struct SidecarArgs {
  client::SidecarOptions options;
  std::string transports;
  int timeout_ms = 4000;  // below the mount's -rdma.timeoutMs (5000): we answer before it gives up
};

void RunSidecar(SidecarArgs a) {
  // Signals blocked before any thread starts, so they stay pending for Wait().
  auto signals = agent::ShutdownSignal::Block();
  if (!signals) throw CommandError(signals.error());
  if (!a.transports.empty()) a.options.client.transports = a.transports;
  a.options.client.timeout = std::chrono::milliseconds(a.timeout_ms);
  auto sidecar = client::Sidecar::Start(a.options);
  if (!sidecar) throw CommandError(sidecar.error());
  std::fprintf(stderr,
               "swrdma sidecar: listening on %s (weed mount -rdma.enabled -rdma.sidecar=HOST:%u); "
               "agents at volume server host:%u%s%s%s%s\n",
               (*sidecar)->endpoint().c_str(), (*sidecar)->port(), a.options.agent_port,
               a.options.agent_map.empty() ? "" : " or per ", a.options.agent_map.c_str(),
               a.options.master_url.empty() ? "" : "; master ", a.options.master_url.c_str());
  for (;;) {
    const int sig = signals->Wait();
    if (sig == SIGHUP) continue;  // nothing to reload
    std::fprintf(stderr, "swrdma sidecar: %s, stopping\n",
                 std::string(agent::ShutdownSignal::Name(sig)).c_str());
    break;
  }
  (*sidecar)->Stop();
  const auto s = (*sidecar)->stats();
  std::fprintf(stderr, "swrdma sidecar: served %llu reads (%llu bytes), %llu errors\n",
               static_cast<unsigned long long>(s.reads), static_cast<unsigned long long>(s.bytes),
               static_cast<unsigned long long>(s.errors));
}

}  // namespace

void AddSidecarCommand(CLI::App& app) {
  auto a = std::make_shared<SidecarArgs>();
  auto* cmd = app.add_subcommand(
      "sidecar",
      "Serve the weed mount RDMA sidecar API (GET /health, GET /read) with one-sided reads "
      "through the swrdma agents of the volume servers");
  auto& o = a->options;
  cmd->add_option("--http", o.listen, "Listen address HOST:PORT")->capture_default_str();
  cmd->add_option("--agent-port", o.agent_port, "The agents' port on each volume server host")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  cmd->add_option("--agent-map", o.agent_map,
                  "File of 'VOLUME_SERVER_HOST:PORT AGENT_URL' lines overriding host + "
                  "--agent-port ('#' comments)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--master", o.master_url,
                  "SeaweedFS master URL(s): read tokens for agents that require them, and reads "
                  "sent without volume_server");
  cmd->add_option("--transports", a->transports,
                  "UCX transports for the clients (UCX_TLS), e.g. tcp or posix,sysv,cma");
  cmd->add_option("--timeout-ms", a->timeout_ms,
                  "Timeout of each agent request and read, milliseconds (keep it below the "
                  "mount's -rdma.timeoutMs)")
      ->check(CLI::Range(1, 3'600'000))
      ->capture_default_str();
  cmd->add_option("--threads", o.threads, "Reads served at once (HTTP threads)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--clients-per-agent", o.clients_per_agent,
                  "Connected clients (UCX workers) per agent, each serving one read at a time")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--cache-mb", o.cache_mb,
                  "Verified needles kept ~1 s for the other pieces of the same chunk, MiB (0: off)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  cmd->callback([a] { RunSidecar(*a); });
}

}  // namespace swrdma::cli
