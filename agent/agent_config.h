// swrdma-agent's settings and their command-line flags.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/exported_volume.h"
#include "agent/progress_thread.h"
#include "protocol/status.h"
#include "volume/idx_file.h"

namespace CLI {
class App;
}

namespace swrdma::agent {

inline constexpr uint16_t kDefaultAgentPort = 18515;
// Read when it exists and neither --config nor SWRDMA_CONFIG names another file.
inline constexpr std::string_view kDefaultConfigFile = "/etc/swrdma/agent.toml";

struct AgentConfig {
  std::vector<std::filesystem::path> dirs;  // volume directories (the volume server's -dir)
  std::filesystem::path index_dir = "/var/lib/swrdma/index";
  std::vector<std::string> http = {"0.0.0.0:18515"};
  // Checked reads over TCP (agent/tcp_read_server.h): "HOST:PORT", "off"; unset: the first
  // --http host with its port + 1.
  std::optional<std::string> read_port;
  std::optional<std::string> transports;   // UCX_TLS
  bool require_transports = false;         // fail instead of falling back to other transports
  std::optional<std::string> net_devices;  // UCX_NET_DEVICES
  // One-sided RDMA READ over verbs (agent/verbs_exporter.h): rdma_cm port ("off": none), device
  // (empty: the first with an active port) and the address to listen on.
  std::string verbs_port = "18517";
  std::string verbs_device;
  std::string verbs_address = "0.0.0.0";
  std::string verbs_odp = "auto";  // auto | on | off (agent/verbs_exporter.h OdpMode)
  // What registrations for RDMA READ may pin (rdma/pin_budget.h): "auto" (half of RAM, within
  // RLIMIT_MEMLOCK without CAP_IPC_LOCK), "unlimited" or a size; past it reads are checked.
  std::string max_pinned_bytes = "auto";
  // Hot volumes first under the pin budget (agent/hot_first.h): how long a volume seen for the
  // first time is kept registered while its heat is measured, and one registered in place of
  // colder ones before it may be dropped in turn.
  std::chrono::seconds hot_first_warmup{60};
  std::chrono::seconds hot_first_dwell{60};
  ProgressMode progress_mode = ProgressMode::kAdaptive;
  ExportMode export_mode = ExportMode::kMap;
  OffsetWidth offset_width = OffsetWidth::k4;  // .idx entries when a volume has no .vif
  int http_threads = 2;
  size_t max_connections = 1024;
  size_t max_lookup_batch = 10'000;
  size_t index_cache_entries = 512 * 1024;  // NeedleIndexOptions::lookup_cache_entries
  // UCX tcp segment (rdma::UcxContextOptions::tcp_segment_bytes): 64 KiB gives ~3x the bandwidth
  // of UCX's 8 KiB for large needles over tcp; 0 leaves UCX's default.
  size_t tcp_segment_bytes = size_t{64} << 10;
  std::chrono::seconds rescan_interval{5};
  std::chrono::seconds retire_grace{10};  // old exports stay mapped this long after replacement
  std::chrono::seconds device_rescan_interval{60};  // RDMA device hot-plug check; 0 = off
  uint64_t growth_reserve = uint64_t{1} << 30;      // registered past end of file for appends
  std::string log_level = "info";
  bool list_devices = false;    // print RDMA devices and exit
  bool supervise = true;        // run the agent in a child process restarted if it crashes
  std::vector<int> listen_fds;  // bound by the supervisor, one per `http` entry (not a flag)
  std::optional<std::filesystem::path> config_file;  // --config / SWRDMA_CONFIG, or the default

  // Read authorization (docs/security.md). Never logged.
  std::optional<std::string> jwt_read_key;  // HS256 key; env SWRDMA_JWT_READ_KEY
  std::optional<std::filesystem::path>
      security_toml;                    // SeaweedFS security.toml ([jwt.signing.read])
  std::optional<std::string> exposure;  // "checked" | "region" | "push"; default checked
  // Serve without read checks even though a read key was found (weed's search path or env):
  // running open beside a volume server that checks tokens must be asked for explicitly.
  bool no_read_auth = false;
  // Allow --exposure region together with a read key (a token for one fid then yields the key
  // to its whole volume where region is in force, i.e. on a NIC that enforces keys): refused
  // without this.
  bool region_with_tokens = false;
  // Allow UCX tcp among the transports (agent/ucx_transports.h): any peer reaching it can write
  // agent memory (UCT's PUT_REQ frame), so it must be asked for by name.
  bool insecure_ucx_tcp = false;

  // Same-host reads (agent/local_server.h, issue 18): the Unix socket handing read-only volume
  // descriptors to local clients. Empty: off.
  std::string local_socket;
  std::vector<std::string> local_allow_uids;  // ids or user names
  std::vector<std::string> local_allow_gids;  // ids or group names
  std::string local_socket_mode = "0660";
  std::string local_socket_group;  // empty: the agent's group
  // Serve the local socket although read tokens are on (a local user gets whole volumes).
  bool local_with_tokens = false;
};

// Declares every flag on `app`, bound to `config`. Validation of values happens in the
// callbacks: a present but invalid value is an error naming the flag.
void AddAgentFlags(CLI::App& app, AgentConfig& config);

// Looks an environment variable up (nullopt when unset); tests pass a map instead of the process
// environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnvironment();

// "http-threads" -> "SWRDMA_HTTP_THREADS".
std::string EnvNameOf(std::string_view flag);

// Where the settings came from, for the start-up log.
struct ConfigSources {
  std::optional<std::filesystem::path> file;  // the config file read, if any
  std::vector<std::string> env;               // environment variables that set something
};

// The agent's settings from every source, highest first: command-line flag, environment variable
// SWRDMA_<FLAG> (lists comma-separated; an empty variable counts as unset), TOML config file
// (--config FILE, else SWRDMA_CONFIG, else kDefaultConfigFile if it exists; keys are the flag
// names with '_' for '-'), built-in default. Declares the flags plus --config on `app` and parses
// `args` (argv without argv[0]) with it: CLI::ParseError (--help, --version, a bad flag)
// propagates for app.exit(). A bad value in the environment or the file, an unknown key or an
// unreadable file is kInvalidArgument naming the variable, or the file and key. Every source is
// validated, including values a higher source overrides.
Result<ConfigSources> ParseAgentConfig(
    CLI::App& app, AgentConfig& config, const std::vector<std::string>& args, const EnvLookup& env,
    const std::filesystem::path& default_file = std::filesystem::path(kDefaultConfigFile));

// The effective settings on one line, for the start-up log. Secrets are redacted ("(set)").
std::string DescribeConfig(const AgentConfig& config);

}  // namespace swrdma::agent
