// swrdma-agent's settings and their command-line flags.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "agent/exported_volume.h"
#include "agent/progress_thread.h"
#include "index/idx_file.h"

namespace CLI {
class App;
}

namespace swrdma::agent {

inline constexpr uint16_t kDefaultAgentPort = 18515;

struct AgentConfig {
  std::vector<std::filesystem::path> dirs;  // volume directories (the volume server's -dir)
  std::filesystem::path index_dir = "/var/lib/swrdma/index";
  std::vector<std::string> http = {"0.0.0.0:18515"};
  std::optional<std::string> transports;   // UCX_TLS
  bool require_transports = false;         // fail instead of falling back to other transports
  std::optional<std::string> net_devices;  // UCX_NET_DEVICES
  ProgressMode progress_mode = ProgressMode::kAdaptive;
  ExportMode export_mode = ExportMode::kMap;
  OffsetWidth offset_width = OffsetWidth::k4;  // .idx entries when a volume has no .vif
  int http_threads = 2;
  size_t max_connections = 1024;
  size_t max_lookup_batch = 10'000;
  std::chrono::seconds rescan_interval{5};
  std::chrono::seconds retire_grace{10};  // old exports stay mapped this long after replacement
  uint64_t growth_reserve = uint64_t{1} << 30;  // registered past end of file for appends
  std::string log_level = "info";
  bool list_devices = false;    // print RDMA devices and exit
  bool supervise = true;        // run the agent in a child process restarted if it crashes
  std::vector<int> listen_fds;  // bound by the supervisor, one per `http` entry (not a flag)
};

// Declares every flag on `app`, bound to `config`. Validation of values happens in the
// callbacks: a present but invalid value is an error naming the flag.
void AddAgentFlags(CLI::App& app, AgentConfig& config);

}  // namespace swrdma::agent
