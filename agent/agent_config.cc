#include "agent/agent_config.h"

#include <CLI/CLI.hpp>

namespace swrdma::agent {

void AddAgentFlags(CLI::App& app, AgentConfig& c) {
  app.add_option("--dir", c.dirs,
                 "Volume directory to export (the volume server's -dir); repeat for several")
      ->check(CLI::ExistingDirectory);
  app.add_option("--index-dir", c.index_dir, "Where the RocksDB needle index lives")
      ->capture_default_str();
  app.add_option("--http", c.http,
                 "HOST:PORT to serve the key-exchange API on; repeat for several NICs")
      ->capture_default_str();
  app.add_option_function<std::string>(
      "--transports", [&c](const std::string& v) { c.transports = v; },
      "UCX transports to use (UCX_TLS), e.g. tcp | posix,sysv,cma | rc,dc,self");
  app.add_flag("--require-transports", c.require_transports,
               "Fail at start unless every transport named by --transports is available");
  app.add_option_function<std::string>(
      "--net-devices", [&c](const std::string& v) { c.net_devices = v; },
      "Devices UCX may use (UCX_NET_DEVICES), e.g. mlx5_0:1 or eth0");
  app.add_option_function<std::string>(
         "--progress",
         [&c](const std::string& v) {
           auto m = ParseProgressMode(v);
           if (!m) throw CLI::ValidationError("--progress", m.error().message());
           c.progress_mode = *m;
         },
         "How the UCX worker is progressed: adaptive (default: spin while busy, sleep when "
         "idle), busy (lowest latency, one core always), event (least CPU)")
      ->default_str("adaptive");
  app.add_option_function<std::string>(
         "--export-mode",
         [&c](const std::string& v) {
           auto m = ParseExportMode(v);
           if (!m) throw CLI::ValidationError("--export-mode", m.error().message());
           c.export_mode = *m;
         },
         "map (read-only file mapping, default) | map-writable | copy; see docs/deploy.md")
      ->default_str("map");
  app.add_option_function<int>(
         "--offset-bytes",
         [&c](int v) { c.offset_width = v == 5 ? OffsetWidth::k5 : OffsetWidth::k4; },
         "Width of .idx offsets when a volume has no .vif (4, or 5 for 5-byte-offset builds)")
      ->check(CLI::IsMember({4, 5}))
      ->default_str("4");
  app.add_option("--http-threads", c.http_threads, "Threads serving HTTP")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--max-connections", c.max_connections, "HTTP connections served at once")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--max-lookup-batch", c.max_lookup_batch, "File ids in one /v1/lookup")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option_function<int>(
         "--rescan-interval", [&c](int v) { c.rescan_interval = std::chrono::seconds(v); },
         "Seconds between rescans of the volume directories")
      ->check(CLI::Range(1, 3600))
      ->default_str("5");
  app.add_option_function<int>(
         "--retire-grace", [&c](int v) { c.retire_grace = std::chrono::seconds(v); },
         "Seconds a replaced export stays mapped so in-flight reads finish")
      ->check(CLI::Range(0, 3600))
      ->default_str("10");
  app.add_option_function<uint64_t>(
         "--growth-reserve-mb", [&c](uint64_t mb) { c.growth_reserve = mb << 20; },
         "MiB mapped and registered past the end of each volume file, so appends are served "
         "without re-exporting")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 20))
      ->default_str("1024");
  app.add_option("--log-level", c.log_level, "trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_flag("--supervise,!--no-supervise", c.supervise,
               "Run the agent in a child process that is restarted if it crashes (default on; "
               "see docs/read-path.md on UCX aborts with emulated RMA)");
  app.add_flag("--list-devices", c.list_devices,
               "Print RDMA devices and UCX transports, then exit");
}

}  // namespace swrdma::agent
