#include "client/cli/read_commands.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "client/cli/command_error.h"
#include "client/client.h"
#include "protocol/wire.h"

namespace swrdma::cli {
namespace {

struct CommonArgs {
  std::string agent = "http://127.0.0.1:18515";
  std::string transports;
  std::string fallback = "none";
  int timeout_ms = 5000;
};

void AddCommon(CLI::App* cmd, CommonArgs& a) {
  cmd->add_option("--agent", a.agent, "Agent URL (http://HOST:PORT)")->capture_default_str();
  cmd->add_option("--transports", a.transports,
                  "UCX transports for this client (UCX_TLS), e.g. tcp or posix,sysv,cma");
  cmd->add_option("--fallback", a.fallback,
                  "none: RDMA or fail; http: read over the agent's HTTP when UCX cannot connect")
      ->check(CLI::IsMember({"none", "http"}))
      ->capture_default_str();
  cmd->add_option("--timeout-ms", a.timeout_ms, "Timeout of each request, milliseconds")
      ->check(CLI::Range(1, 3'600'000))
      ->capture_default_str();
}

std::unique_ptr<client::Client> Connect(const CommonArgs& a) {
  client::ClientOptions o;
  o.agent_url = a.agent;
  if (!a.transports.empty()) o.transports = a.transports;
  o.timeout = std::chrono::milliseconds(a.timeout_ms);
  o.fallback = a.fallback == "http" ? client::FallbackMode::kHttp : client::FallbackMode::kNone;
  auto c = client::Client::Connect(o);
  if (!c) throw CommandError(c.error());
  return std::move(*c);
}

struct GetArgs {
  CommonArgs common;
  std::vector<std::string> fids;
  std::string output;
  bool raw = false;
  bool verbose = false;
};

void RunGet(const GetArgs& a) {
  if (a.fids.size() > 1 && !a.output.empty() && !std::filesystem::is_directory(a.output)) {
    throw CommandError("-o must name an existing directory when reading several fids", kExitUsage);
  }
  auto client = Connect(a.common);
  const auto start = std::chrono::steady_clock::now();
  client::ReadOptions ro;
  ro.decompress = !a.raw;
  auto results = client->ReadMany(a.fids, ro);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uint64_t bytes = 0;
  std::string first_error;
  size_t failed = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i]) {
      ++failed;
      const std::string line = results[i].error().ToString();
      if (first_error.empty()) first_error = line;
      if (a.fids.size() > 1) std::fprintf(stderr, "swrdma: %s\n", line.c_str());
      continue;
    }
    const auto& d = results[i]->data;
    bytes += d.size();
    if (a.output.empty()) {
      if (std::fwrite(d.data(), 1, d.size(), stdout) != d.size()) {
        throw CommandError("writing to stdout failed", kExitFailure);
      }
      continue;
    }
    std::filesystem::path out = a.output;
    if (a.fids.size() > 1) out /= a.fids[i];
    std::ofstream f(out, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(d.data()), static_cast<std::streamsize>(d.size()));
    if (!f) throw CommandError(fmt::format("writing {} failed", out.string()), kExitFailure);
  }
  std::fflush(stdout);
  if (a.verbose) {
    auto t = client->Transports();
    const auto& s = client->stats();
    std::fprintf(stderr,
                 "swrdma: read %zu of %zu needles, %llu bytes in %.3f s over %s (transports: "
                 "%s), %llu lookups, %llu retries\n",
                 a.fids.size() - failed, a.fids.size(), static_cast<unsigned long long>(bytes),
                 secs, s.http_fallbacks ? "http" : "rdma",
                 t && !t->empty() ? fmt::format("{}", fmt::join(*t, ",")).c_str() : "none",
                 static_cast<unsigned long long>(s.lookups),
                 static_cast<unsigned long long>(s.retries));
  }
  if (failed) {
    if (a.fids.size() == 1) throw CommandError(first_error, kExitFailure);
    throw CommandError(fmt::format("{} of {} reads failed", failed, a.fids.size()), kExitFailure);
  }
}

struct InfoArgs {
  CommonArgs common;
  bool json = false;
};

void RunInfo(const InfoArgs& a) {
  auto client = Connect(a.common);
  auto volumes = client->Volumes();
  if (!volumes) throw CommandError(volumes.error());
  const auto& info = client->agent_info();
  auto transports = client->Transports();
  if (a.json) {
    nlohmann::json j = ToJson(info);
    j["volumes"] = ToJson(*volumes)["volumes"];
    j["endpoint_transports"] = transports ? *transports : std::vector<std::string>{};
    std::printf("%s\n", EncodeBody(j, WireFormat::kJson).c_str());
    return;
  }
  std::printf("agent %s at %s\n", info.agent_version.c_str(), a.common.agent.c_str());
  std::printf("  agent transports:    %s\n",
              fmt::format("{}", fmt::join(info.transports, ",")).c_str());
  std::printf("  this client's lanes: %s\n",
              transports ? fmt::format("{}", fmt::join(*transports, ",")).c_str()
                         : transports.error().ToString().c_str());
  std::printf("  exposure: %s, %zu volumes\n", info.exposure.c_str(), volumes->volumes.size());
  for (const auto& v : volumes->volumes) {
    std::printf(
        "  volume %u%s%s: v%u, %llu bytes, %llu live, %llu deleted, revision %u, "
        "generation %llu\n",
        v.volume_id, v.collection.empty() ? "" : " collection ", v.collection.c_str(), v.version,
        static_cast<unsigned long long>(v.size), static_cast<unsigned long long>(v.live_needles),
        static_cast<unsigned long long>(v.deleted_needles), v.compaction_revision,
        static_cast<unsigned long long>(v.generation));
  }
}

}  // namespace

void AddGetCommand(CLI::App& app) {
  auto args = std::make_shared<GetArgs>();
  auto* cmd = app.add_subcommand("get", "Read needles by file id (verified: header + CRC-32C)");
  AddCommon(cmd, args->common);
  cmd->add_option("fid", args->fids, "File id(s), e.g. 3,01637037d6")->required();
  cmd->add_option("-o,--output", args->output,
                  "Write the data to FILE (one fid) or into DIRECTORY/<fid> (several)");
  cmd->add_flag("--raw", args->raw, "Do not decompress gzip-stored needles");
  cmd->add_flag("-v,--verbose", args->verbose, "Print a summary line (bytes, time, transport)");
  cmd->callback([args] { RunGet(*args); });
}

void AddInfoCommand(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  auto* cmd = app.add_subcommand("info", "Show the agent's info and exported volumes");
  AddCommon(cmd, args->common);
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->callback([args] { RunInfo(*args); });
}

}  // namespace swrdma::cli
