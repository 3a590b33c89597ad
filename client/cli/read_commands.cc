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
#include "client/cli/master_args.h"
#include "client/client.h"
#include "client/cluster_client.h"
#include "protocol/wire.h"

namespace swrdma::cli {
namespace {

struct CommonArgs {
  std::string agent = "http://127.0.0.1:18515";
  std::string transports;
  std::string verbs_device;
  int verbs_spin_us = 50;
  std::string fallback = "none";
  int timeout_ms = 5000;
  MasterArgs cluster;  // --master: through the master's replicas instead of one agent
};

void AddCommon(CLI::App* cmd, CommonArgs& a, bool tokens) {
  auto* agent =
      cmd->add_option("--agent", a.agent, "Agent URL (http://HOST:PORT)")->capture_default_str();
  AddMasterOptions(cmd, a.cluster, agent, tokens);
  cmd->add_option("--transports", a.transports,
                  "Transports for this client: verbs (one-sided RDMA READ), local, tcp, or UCX's "
                  "(UCX_TLS), e.g. verbs or posix,sysv,cma; default: the best the agent offers");
  cmd->add_option("--verbs-device", a.verbs_device,
                  "RDMA device for verbs reads (ibv_devices); default: the first active one");
  cmd->add_option("--verbs-spin-us", a.verbs_spin_us,
                  "Microseconds a wait for RDMA READs polls before it sleeps until the next "
                  "completion")
      ->check(CLI::Range(0, 10'000'000))
      ->capture_default_str();
  cmd->add_option("--fallback", a.fallback,
                  "none: RDMA or fail; http: read over the agent's HTTP when UCX cannot connect")
      ->check(CLI::IsMember({"none", "http"}))
      ->capture_default_str();
  cmd->add_option("--timeout-ms", a.timeout_ms, "Timeout of each request, milliseconds")
      ->check(CLI::Range(1, 3'600'000))
      ->capture_default_str();
}

client::ClientOptions ClientOptionsOf(const CommonArgs& a) {
  client::ClientOptions o;
  o.agent_url = a.agent;
  if (!a.transports.empty()) o.transports = a.transports;
  o.verbs_device = a.verbs_device;
  o.verbs_spin = std::chrono::microseconds(a.verbs_spin_us);
  o.timeout = std::chrono::milliseconds(a.timeout_ms);
  o.fallback = a.fallback == "http" ? client::FallbackMode::kHttp : client::FallbackMode::kNone;
  return o;
}

std::unique_ptr<client::Client> Connect(const CommonArgs& a) {
  auto c = client::Client::Connect(ClientOptionsOf(a));
  if (!c) throw CommandError(c.error());
  return std::move(*c);
}

struct GetArgs {
  CommonArgs common;
  std::vector<std::string> fids;
  std::string output;
  bool raw = false;
  bool verbose = false;
  std::vector<std::string> jwts;  // --jwt: one for every fid, or one per fid in order
};

void RunGet(const GetArgs& a) {
  if (a.fids.size() > 1 && !a.output.empty() && !std::filesystem::is_directory(a.output)) {
    throw CommandError("-o must name an existing directory when reading several fids", kExitUsage);
  }
  if (a.jwts.size() > 1 && a.jwts.size() != a.fids.size()) {
    throw CommandError(fmt::format("{} --jwt for {} fids: give one token, or one per fid in order",
                                   a.jwts.size(), a.fids.size()),
                       kExitUsage);
  }
  std::unique_ptr<client::Client> client;
  std::unique_ptr<client::ClusterClient> cluster;
  if (!a.common.cluster.master.empty()) {
    auto c =
        client::ClusterClient::Create(ClusterOptions(a.common.cluster, ClientOptionsOf(a.common)));
    if (!c) throw CommandError(c.error());
    cluster = std::move(*c);
  } else {
    client = Connect(a.common);
  }
  const auto start = std::chrono::steady_clock::now();
  client::ReadOptions ro;
  ro.decompress = !a.raw;
  if (a.jwts.size() == 1) ro.jwt = a.jwts[0];
  if (a.jwts.size() > 1) ro.jwts = a.jwts;
  auto results = cluster ? cluster->ReadMany(a.fids, ro) : client->ReadMany(a.fids, ro);
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
  if (a.verbose && cluster) {
    const auto& s = cluster->stats();
    const auto m = cluster->master().stats();
    std::fprintf(
        stderr,
        "swrdma: read %zu of %zu needles, %llu bytes in %.3f s through master %s: %llu "
        "agents connected, %llu failovers, %llu master lookups, %llu read tokens, "
        "%llu EC needles assembled from several agents\n",
        a.fids.size() - failed, a.fids.size(), static_cast<unsigned long long>(bytes), secs,
        a.common.cluster.master.c_str(), static_cast<unsigned long long>(s.connects),
        static_cast<unsigned long long>(s.failovers), static_cast<unsigned long long>(m.lookups),
        static_cast<unsigned long long>(s.tokens), static_cast<unsigned long long>(s.ec_assembled));
  } else if (a.verbose) {
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
  std::vector<uint32_t> volumes;  // with --master
};

// info --master: each volume's replicas per the master, their agents, and whether each agent
// answers and exports the volume.
void RunClusterInfo(const InfoArgs& a) {
  if (a.volumes.empty()) {
    throw CommandError("info --master needs --volume VID (one or more)", kExitUsage);
  }
  const client::ClientOptions co = ClientOptionsOf(a.common);
  const auto options = ClusterOptions(a.common.cluster, co);
  auto master = client::MasterClient::Create(options.master);
  if (!master) throw CommandError(master.error());
  auto directory = client::AgentDirectory::Create(options.agent_port, options.agent_map);
  if (!directory) throw CommandError(directory.error());
  nlohmann::ordered_json out = {{"master", a.common.cluster.master},
                                {"volumes", nlohmann::ordered_json::array()}};
  size_t problems = 0;
  for (uint32_t vid : a.volumes) {
    nlohmann::ordered_json vj = {{"volume", vid}, {"replicas", nlohmann::ordered_json::array()}};
    auto locations = (*master)->Lookup(vid);
    if (!locations) {
      ++problems;
      vj["error"] = locations.error().ToString();
      out["volumes"].push_back(vj);
      continue;
    }
    for (const auto& l : *locations) {
      nlohmann::ordered_json rj = {{"volume_server", l.url}, {"data_center", l.data_center}};
      auto agent = directory->AgentFor(l.url);
      rj["agent"] = agent ? *agent : "";
      Status problem;
      if (!agent) {
        problem = agent.error();
      } else {
        client::ClientOptions one = co;
        one.agent_url = *agent;
        auto c = client::Client::Connect(one);
        auto list = c ? (*c)->Volumes() : Result<VolumeList>(std::unexpected(c.error()));
        if (!list) {
          problem = list.error();
        } else {
          rj["exported"] = false;
          for (const auto& v : list->volumes) {
            if (v.volume_id != vid) continue;
            rj["exported"] = true;
            rj["generation"] = v.generation;
            rj["live_needles"] = v.live_needles;
            rj["size"] = v.size;
          }
          if (!rj["exported"].get<bool>()) {
            problem =
                Status(Code::kUnknownVolume, fmt::format("agent does not export volume {}", vid));
          }
        }
      }
      rj["ok"] = problem.ok();
      if (!problem.ok()) {
        ++problems;
        rj["error"] = problem.ToString();
      }
      vj["replicas"].push_back(rj);
    }
    out["volumes"].push_back(vj);
  }
  if (a.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("master %s\n", a.common.cluster.master.c_str());
    for (const auto& vj : out["volumes"]) {
      std::printf("  volume %u%s\n", vj["volume"].get<uint32_t>(),
                  vj.contains("error") ? (": " + vj["error"].get<std::string>()).c_str() : "");
      for (const auto& rj : vj["replicas"]) {
        std::printf("    %s -> agent %s: %s\n", rj["volume_server"].get<std::string>().c_str(),
                    rj["agent"].get<std::string>().c_str(),
                    rj["ok"].get<bool>() ? fmt::format("ok, generation {}, {} live needles",
                                                       rj["generation"].get<uint64_t>(),
                                                       rj["live_needles"].get<uint64_t>())
                                               .c_str()
                                         : rj["error"].get<std::string>().c_str());
      }
    }
  }
  std::fflush(stdout);
  if (problems) {
    throw CommandError(fmt::format("{} volume(s) or replica(s) cannot be read", problems),
                       kExitFailure);
  }
}

void RunInfo(const InfoArgs& a) {
  if (!a.common.cluster.master.empty()) return RunClusterInfo(a);
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
  AddCommon(cmd, args->common, /*tokens=*/true);
  cmd->add_option("fid", args->fids, "File id(s), e.g. 3,01637037d6")->required();
  cmd->add_option("-o,--output", args->output,
                  "Write the data to FILE (one fid) or into DIRECTORY/<fid> (several)");
  cmd->add_flag("--raw", args->raw, "Do not decompress gzip-stored needles");
  cmd->add_option("--jwt", args->jwts,
                  "SeaweedFS read token for the fid (agents with a read key); repeat for one per "
                  "fid, in order. Env SWRDMA_JWT holds one for all")
      ->envname("SWRDMA_JWT");
  cmd->add_flag("-v,--verbose", args->verbose, "Print a summary line (bytes, time, transport)");
  cmd->callback([args] { RunGet(*args); });
}

void AddInfoCommand(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  auto* cmd = app.add_subcommand("info", "Show the agent's info and exported volumes");
  AddCommon(cmd, args->common, /*tokens=*/false);
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->add_option("--volume", args->volumes,
                  "With --master: the volume(s) whose replicas and agents to check");
  cmd->callback([args] { RunInfo(*args); });
}

}  // namespace swrdma::cli
