#include "agent/agent_config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include <toml++/toml.h>

#include "agent/token_verifier.h"
#include "http/http_util.h"
#include "rdma/pin_budget.h"

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
      "--read-port",
      [&c](const std::string& v) {
        if (v != "off" && v != "0") {
          if (auto a = ParseListenAddress(v); !a) {
            throw CLI::ValidationError("--read-port", a.error().message());
          }
        }
        c.read_port = v;
      },
      "HOST:PORT to serve checked reads over plain TCP on (clients on other hosts read there; "
      "shared memory stays on UCX), or off; default: the first --http host, port + 1 "
      "(0.0.0.0:18516)");
  app.add_option_function<std::string>(
      "--transports", [&c](const std::string& v) { c.transports = v; },
      "UCX transports to use (UCX_TLS), e.g. posix,sysv,cma | rc,dc,self; default: UCX_TLS, "
      "else ^tcp (all but tcp: shared memory, and InfiniBand/RoCE where present)");
  app.add_option_function<std::string>(
         "--verbs-port",
         [&c](const std::string& v) {
           if (v != "off") {
             unsigned port = 0;
             auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), port);
             if (ec != std::errc() || end != v.data() + v.size() || port == 0 || port > 65535) {
               throw CLI::ValidationError("--verbs-port", "expected a port (1-65535) or off");
             }
           }
           c.verbs_port = v;
         },
         "rdma_cm port for one-sided RDMA READ (verbs: InfiniBand, RoCE) or off; verbs is used "
         "when an RDMA device with an active port exists")
      ->default_str("18517");
  app.add_option("--verbs-device", c.verbs_device,
                 "RDMA device to export on (ibv_devices), e.g. mlx5_0; default: the first device "
                 "whose port 1 is active");
  app.add_option("--verbs-address", c.verbs_address,
                 "Address of an RDMA-capable interface to listen on for verbs clients")
      ->capture_default_str();
  app.add_option("--verbs-odp", c.verbs_odp,
                 "On-demand paging for verbs exports: auto (when the device offers ODP for RC "
                 "RDMA READ: nothing pinned, every volume registered), on (required), off "
                 "(always pin, within --max-pinned-bytes)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  app.add_option("--max-pinned-bytes", c.max_pinned_bytes,
                 "Most bytes of volume files registered for RDMA READ (pinned in RAM unless the "
                 "NIC pages on demand): auto (half of RAM, and RLIMIT_MEMLOCK without "
                 "CAP_IPC_LOCK), unlimited, or a size like 64G. Volumes past it are served to "
                 "verbs clients by checked reads over --read-port")
      ->check([](const std::string& v) -> std::string {
        auto parsed = rdma::ParsePinLimit(v);
        return parsed ? std::string() : parsed.error().message();
      })
      ->capture_default_str();
  app.add_flag("--require-transports", c.require_transports,
               "Fail at start unless every transport named by --transports is available");
  app.add_flag("--insecure-ucx-tcp", c.insecure_ucx_tcp,
               "Offer UCX tcp (UCX's default transports, or tcp in --transports / UCX_TLS; without "
               "this flag the agent refuses to start with tcp). Any peer that reaches a UCX tcp "
               "port can write agent memory; trusted networks only. Other hosts read over "
               "--read-port without it (docs/security.md)");
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
  app.add_option("--max-connections", c.max_connections,
                 "HTTP connections served at once (and, separately, checked-read TCP connections)")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--max-lookup-batch", c.max_lookup_batch, "File ids in one /v1/lookup")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--index-cache-entries", c.index_cache_entries,
                 "Needle index answers kept in memory in front of RocksDB, about 80 bytes each "
                 "(0: none; every checked read then looks its needle up in RocksDB)")
      ->check(CLI::Range(size_t{0}, size_t{1} << 32))
      ->capture_default_str();
  app.add_option("--tcp-segment-size", c.tcp_segment_bytes,
                 "Bytes per UCX tcp message (UCX_TCP_TX/RX_SEG_SIZE; 0: UCX's 8 KiB default). "
                 "Larger pieces make large needles over tcp ~3x faster; the environment's "
                 "UCX_TCP_*_SEG_SIZE wins")
      ->check(CLI::Range(size_t{0}, size_t{16} << 20))
      ->capture_default_str();
  app.add_option_function<int>(
         "--rescan-interval", [&c](int v) { c.rescan_interval = std::chrono::seconds(v); },
         "Seconds between rescans of the volume directories")
      ->check(CLI::Range(1, 3600))
      ->default_str("5");
  app.add_option_function<int>(
         "--hot-first-warmup", [&c](int v) { c.hot_first_warmup = std::chrono::seconds(v); },
         "Under --max-pinned-bytes: seconds a volume first seen (at start, new, vacuumed) keeps "
         "its registration while its load is measured, before hotter volumes may take its room")
      ->check(CLI::Range(0, 86400))
      ->default_str("60");
  app.add_option_function<int>(
         "--hot-first-dwell", [&c](int v) { c.hot_first_dwell = std::chrono::seconds(v); },
         "Under --max-pinned-bytes: seconds a volume registered in place of colder ones keeps "
         "its room before it may give it up in turn (no flapping between similar loads)")
      ->check(CLI::Range(0, 86400))
      ->default_str("60");
  app.add_option_function<int>(
         "--retire-grace", [&c](int v) { c.retire_grace = std::chrono::seconds(v); },
         "Seconds a replaced export stays mapped so in-flight reads finish")
      ->check(CLI::Range(0, 3600))
      ->default_str("10");
  app.add_option_function<int>(
         "--device-rescan-interval",
         [&c](int v) { c.device_rescan_interval = std::chrono::seconds(v); },
         "Seconds between checks for RDMA devices/ports appearing, vanishing or changing state "
         "(logged, and the swrdma_rdma_devices metric); 0 turns it off")
      ->check(CLI::Range(0, 86400))
      ->default_str("60");
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
  app.add_option("--jwt-read-key", c.jwt_read_key,
                 "HS256 key SeaweedFS signs read tokens with ([jwt.signing.read] key); turns on "
                 "read authorization. Prefer the env SWRDMA_JWT_READ_KEY or --security-toml");
  app.add_option(
         "--security-toml", c.security_toml,
         "SeaweedFS security.toml to take [jwt.signing.read] key from (reloaded on SIGHUP); "
         "default: the first of ./, ~/.seaweedfs/, /usr/local/etc/seaweedfs/, "
         "/etc/seaweedfs/ that has one, as weed searches (WEED_JWT_SIGNING_READ_KEY wins)")
      ->check(CLI::ExistingFile);
  app.add_flag("--no-read-auth", c.no_read_auth,
               "Do not check read tokens even when a read key is found (a volume server with "
               "that key refuses reads without one: only for trusted networks)");
  app.add_option("--exposure", c.exposure,
                 "checked (default): the agent checks and sends every read | region: one-sided "
                 "reads under volume keys | push: the agent checks each fid and RDMA WRITEs the "
                 "record into the client's landing buffer. region and push need an RDMA device "
                 "(verbs; with one, verbs clients read under region unless push is asked); on "
                 "tcp and shared memory every read is checked whatever is asked "
                 "(docs/security.md)")
      ->check(CLI::IsMember({"checked", "region", "push"}));
  app.add_flag("--region-with-tokens", c.region_with_tokens,
               "Allow --exposure region with read tokens on: where region is in force, a client "
               "with a token for one fid gets the rkey of its whole volume (trusted clients only)");
  app.add_option("--local-socket", c.local_socket,
                 "Unix socket on which same-host clients get read-only volume descriptors and "
                 "read without copies (transport 'local'); empty: off (agent/local_server.h)");
  app.add_option("--local-allow-uids", c.local_allow_uids,
                 "Users (ids or names) allowed on --local-socket besides root and the agent's own "
                 "user; each gets read access to whole volumes")
      ->delimiter(',');
  app.add_option("--local-allow-gids", c.local_allow_gids,
                 "Groups (ids or names, primary or supplementary) allowed on --local-socket")
      ->delimiter(',');
  app.add_option("--local-socket-mode", c.local_socket_mode,
                 "Octal permissions of the --local-socket file")
      ->check([](const std::string& v) -> std::string {
        if (v.empty() || v.size() > 4 || v.find_first_not_of("01234567") != std::string::npos) {
          return "expected an octal mode like 0660";
        }
        return {};
      })
      ->capture_default_str();
  app.add_option("--local-socket-group", c.local_socket_group,
                 "Group (id or name) that owns the --local-socket file; default the agent's");
  app.add_flag("--local-with-tokens", c.local_with_tokens,
               "Serve --local-socket although read tokens are on: every allowed local user can "
               "then read whole volumes without tokens");
  app.add_flag("--list-devices", c.list_devices,
               "Print RDMA devices and UCX transports, then exit");
}

namespace {

// A flag that can also come from the environment or the config file.
struct Setting {
  std::string flag;      // long name without dashes: "http-threads"
  std::string key;       // config-file key: "http_threads"
  std::string env;       // "SWRDMA_HTTP_THREADS"
  bool is_flag = false;  // boolean switch (true/false)
  bool is_list = false;  // may be repeated (--dir, --http)
};

constexpr std::string_view kConfigEnv = "SWRDMA_CONFIG";

void AddConfigFlag(CLI::App& app, AgentConfig& c) {
  app.add_option("--config", c.config_file,
                 fmt::format("TOML file with settings (keys: flag names with '_', e.g. "
                             "http_threads = 4); default {} if it exists, or env {}. Flags beat "
                             "SWRDMA_<FLAG> environment variables, which beat the file",
                             kDefaultConfigFile, kConfigEnv));
}

std::vector<Setting> Settings() {
  AgentConfig scratch;
  CLI::App app;
  AddAgentFlags(app, scratch);
  std::vector<Setting> out;
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_lnames().empty()) continue;
    const std::string& flag = opt->get_lnames().front();
    if (flag == "help") continue;
    Setting s;
    s.flag = flag;
    s.key = flag;
    std::replace(s.key.begin(), s.key.end(), '-', '_');
    s.env = EnvNameOf(flag);
    s.is_flag = opt->get_expected_max() == 0;
    s.is_list = opt->get_expected_max() > 1;
    out.push_back(std::move(s));
  }
  return out;
}

// Parses `argv` (in order, without a program name) into `config` with a fresh parser.
void ParseFlags(AgentConfig& config, std::vector<std::string> argv) {
  CLI::App app;
  AddAgentFlags(app, config);
  AddConfigFlag(app, config);
  std::reverse(argv.begin(), argv.end());
  app.parse(argv);
}

// Applies one setting's values from a lower source; `where` names the source and key.
Status Apply(AgentConfig& config, const Setting& s, const std::vector<std::string>& values,
             std::string_view where) {
  if (!s.is_list && values.size() != 1) {
    return Status(Code::kInvalidArgument,
                  fmt::format("{}: takes one value, got {}", where, values.size()));
  }
  std::vector<std::string> argv;
  for (const auto& v : values)
    argv.push_back(fmt::format("--{}={}", s.flag, v));
  try {
    ParseFlags(config, std::move(argv));
  } catch (const CLI::ParseError& e) {
    return Status(Code::kInvalidArgument, fmt::format("{}: {}", where, e.what()));
  }
  return Status::Ok();
}

std::optional<std::string> ParseBool(std::string_view text) {
  std::string t(text);
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (t == "true" || t == "1" || t == "yes" || t == "on") return "true";
  if (t == "false" || t == "0" || t == "no" || t == "off") return "false";
  return std::nullopt;
}

// One TOML value as flag text, or why it cannot be one.
Result<std::string> ScalarText(const toml::node& node, const Setting& s) {
  if (s.is_flag) {
    if (auto b = node.value<bool>()) return std::string(*b ? "true" : "false");
    return Error(Code::kInvalidArgument, "expected true or false");
  }
  if (auto str = node.value_exact<std::string>()) return *str;
  if (auto i = node.value_exact<int64_t>()) return std::to_string(*i);
  if (auto f = node.value_exact<double>()) return fmt::format("{}", *f);
  if (auto b = node.value_exact<bool>()) return std::string(*b ? "true" : "false");
  return Error(Code::kInvalidArgument, "expected a string or a number");
}

// `skip_read_key`: the key is held by the verifier process (agent/token_verifier.h); a
// jwt_read_key in the file is not taken, and its text is overwritten once parsed.
Status ApplyFile(AgentConfig& config, const std::filesystem::path& file,
                 const std::vector<Setting>& settings, bool skip_read_key) {
  const std::string name = file.string();
  toml::table root;
  try {  // toml++ reports parse errors as exceptions; they stop here
    root = toml::parse_file(name);
  } catch (const toml::parse_error& err) {
    return Status(
        Code::kInvalidArgument,
        fmt::format("config file {}: line {} column {}: {}", name, err.source().begin.line,
                    err.source().begin.column, err.description()));
  }
  if (skip_read_key) {
    if (auto* key = root["jwt_read_key"].as_string()) {
      std::string& text = key->get();
      std::fill(text.begin(), text.end(), '\0');
      asm volatile("" : : "r"(text.data()) : "memory");  // the stores are not optimized away
    }
  }
  for (auto&& [k, node] : root) {
    const std::string key(k.str());
    if (skip_read_key && key == "jwt_read_key") continue;
    auto it = std::find_if(settings.begin(), settings.end(),
                           [&](const Setting& s) { return s.key == key && s.key != "config"; });
    if (it == settings.end()) {
      std::vector<std::string> known;
      for (const auto& s : settings)
        if (s.key != "config") known.push_back(s.key);
      return Status(Code::kInvalidArgument,
                    fmt::format("config file {}: unknown key '{}' (known keys: {})", name, key,
                                fmt::join(known, ", ")));
    }
    const std::string where = fmt::format("config file {}: key '{}'", name, key);
    std::vector<std::string> values;
    if (const toml::array* arr = node.as_array()) {
      if (!it->is_list)
        return Status(Code::kInvalidArgument, where + ": takes one value, not a list");
      for (const toml::node& e : *arr) {
        auto text = ScalarText(e, *it);
        if (!text)
          return Status(Code::kInvalidArgument,
                        fmt::format("{}: {}", where, text.error().message()));
        values.push_back(std::move(*text));
      }
    } else {
      auto text = ScalarText(node, *it);
      if (!text)
        return Status(Code::kInvalidArgument, fmt::format("{}: {}", where, text.error().message()));
      values.push_back(std::move(*text));
    }
    if (values.empty()) continue;  // `dir = []`: as if absent
    SWRDMA_RETURN_IF_ERROR(Apply(config, *it, values, where));
  }
  return Status::Ok();
}

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    out.emplace_back(text.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

}  // namespace

EnvLookup ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::string EnvNameOf(std::string_view flag) {
  std::string out = "SWRDMA_";
  for (char ch : flag)
    out.push_back(ch == '-' ? '_'
                            : static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
  return out;
}

Result<ConfigSources> ParseAgentConfig(CLI::App& app, AgentConfig& config,
                                       const std::vector<std::string>& args, const EnvLookup& env,
                                       const std::filesystem::path& default_file) {
  AddAgentFlags(app, config);
  AddConfigFlag(app, config);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  app.parse(reversed);  // the command line first: --help, --version and flag errors win

  ConfigSources sources;
  const std::vector<Setting> settings = Settings();
  AgentConfig layered;  // defaults, then file, then environment, then command line

  std::optional<std::string> config_env = env(std::string(kConfigEnv));
  if (config_env && config_env->empty()) config_env.reset();
  if (config.config_file) {
    sources.file = config.config_file;
  } else if (config_env) {
    sources.file = std::filesystem::path(*config_env);
  } else {
    std::error_code ec;
    if (std::filesystem::exists(default_file, ec)) sources.file = default_file;
  }
  if (sources.file) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(*sources.file, ec)) {
      return Error(
          Code::kInvalidArgument,
          fmt::format("config file {} (from {}): not a readable file", sources.file->string(),
                      config.config_file ? "--config"
                      : config_env       ? std::string(kConfigEnv)
                                         : "the default location"));
    }
    SWRDMA_RETURN_IF_ERROR(
        ApplyFile(layered, *sources.file, settings, env(kVerifierFdEnv).has_value()));
  }

  for (const Setting& s : settings) {
    if (s.key == "config") continue;
    auto value = env(s.env);
    if (!value || value->empty()) continue;
    const std::string where = fmt::format("environment variable {}", s.env);
    std::vector<std::string> values;
    if (s.is_flag) {
      auto b = ParseBool(*value);
      if (!b) {
        return Error(Code::kInvalidArgument,
                     fmt::format("{}: expected true or false, got '{}'", where, *value));
      }
      values.push_back(*b);
    } else if (s.is_list) {
      values = SplitList(*value);
    } else {
      values.push_back(*value);
    }
    SWRDMA_RETURN_IF_ERROR(Apply(layered, s, values, where));
    sources.env.push_back(s.env);
  }

  try {
    ParseFlags(layered, args);
  } catch (const CLI::ParseError& e) {  // parsed once already; cannot fail differently
    return Error(Code::kInternal, fmt::format("command line: {}", e.what()));
  }
  layered.config_file = sources.file;
  layered.listen_fds = config.listen_fds;
  config = std::move(layered);
  return sources;
}

std::string DescribeConfig(const AgentConfig& c) {
  std::vector<std::string> dirs;
  for (const auto& d : c.dirs)
    dirs.push_back(d.string());
  return fmt::format(
      "config_file={} dir=[{}] index_dir={} http=[{}] transports={} require_transports={} "
      "verbs_port={} verbs_device={} verbs_address={} verbs_odp={} max_pinned_bytes={} "
      "insecure_ucx_tcp={} net_devices={} progress={} export_mode={} offset_bytes={} "
      "http_threads={} "
      "max_connections={} max_lookup_batch={} index_cache_entries={} tcp_segment_size={} "
      "rescan_interval={}s "
      "retire_grace={}s "
      "hot_first_warmup={}s hot_first_dwell={}s "
      "device_rescan_interval={}s "
      "growth_reserve_mb={} log_level={} supervise={} jwt_read_key={} security_toml={} "
      "exposure={} local_socket={} local_allow_uids=[{}] local_allow_gids=[{}] "
      "local_socket_mode={} local_socket_group={} local_with_tokens={}",
      c.config_file ? c.config_file->string() : "(none)", fmt::join(dirs, ","),
      c.index_dir.string(), fmt::join(c.http, ","), c.transports.value_or("(default)"),
      c.require_transports, c.verbs_port,
      c.verbs_device.empty() ? "(first active)" : c.verbs_device, c.verbs_address, c.verbs_odp,
      c.max_pinned_bytes, c.insecure_ucx_tcp, c.net_devices.value_or("(UCX default)"),
      ProgressModeName(c.progress_mode), ExportModeName(c.export_mode),
      static_cast<int>(c.offset_width), c.http_threads, c.max_connections, c.max_lookup_batch,
      c.index_cache_entries, c.tcp_segment_bytes, c.rescan_interval.count(), c.retire_grace.count(),
      c.hot_first_warmup.count(), c.hot_first_dwell.count(), c.device_rescan_interval.count(),
      c.growth_reserve >> 20, c.log_level, c.supervise,
      c.jwt_read_key                           ? "(set)"
      : std::getenv(kVerifierFdEnv) != nullptr ? "(held by the verifier process)"
                                               : "(unset)",
      c.security_toml ? c.security_toml->string() : "(none)", c.exposure.value_or("(default)"),
      c.local_socket.empty() ? "(off)" : c.local_socket, fmt::join(c.local_allow_uids, ","),
      fmt::join(c.local_allow_gids, ","), c.local_socket_mode,
      c.local_socket_group.empty() ? "(agent's)" : c.local_socket_group, c.local_with_tokens);
}

}  // namespace swrdma::agent
