// Fuzzes the agent's HTTP API (AgentService::Handle, agent/agent_service.h) over a real exported
// volume: routing, query parsing, lookup bodies, the volume-server style GET fallback.
//
// Input, split like an HTTP/1 request without the framing:
//   METHOD SP TARGET LF (Name: value LF)* LF body
// "@fid" anywhere in the target, headers or body is replaced by a live file id of the generated
// volume (the k-th occurrence by the k-th fid), so the fuzzer reaches the found-needle paths.
// An input starting with '!' goes to a second service that requires SeaweedFS read tokens
// (agent/read_auth.h); there "@jwt" is replaced by a valid token for the last "@fid" before it.
//
// Every answer must be a valid response (ResponseProblem), never a 500 (bad input is the
// client's fault), never an exception; JSON and msgpack bodies must decode.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "agent/agent_service.h"
#include "agent/read_auth.h"
#include "agent/volume_set.h"
#include "http/http_util.h"
#include "index/needle_index.h"
#include "protocol/file_id.h"
#include "protocol/jwt.h"
#include "protocol/wire.h"
#include "rdma/ucx/ucx_context.h"
#include "volume/volume_generator.h"

namespace {

using namespace swrdma;
namespace fs = std::filesystem;

void Check(bool ok, std::string_view what, const agent::HttpResponse* r = nullptr) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_agent_handler: %.*s\n", static_cast<int>(what.size()), what.data());
  if (r) {
    std::fprintf(stderr, "  status %d, content-type %s, body: %.300s\n", r->status,
                 r->content_type.c_str(), r->body.c_str());
  }
  std::abort();
}

// Built once per process: generating, indexing and exporting a volume costs far more than a run.
struct World {
  fs::path dir;
  std::optional<rdma::UcxContext> context;
  std::unique_ptr<NeedleIndex> index;
  std::unique_ptr<agent::VolumeSet> volumes;
  std::unique_ptr<agent::AgentService> service;
  std::unique_ptr<agent::ReadAuthorizer> auth;
  std::unique_ptr<agent::AgentService> authed_service;  // tokens required
  std::vector<std::string> fids;                        // live ones
  std::vector<std::string> tokens;                      // tokens[i] covers fids[i]
};
constexpr std::string_view kReadKey = "fuzz-read-key";
World* g_world = nullptr;

void Die(const std::string& what) {
  std::fprintf(stderr, "fuzz_agent_handler: setup failed: %s\n", what.c_str());
  std::abort();
}

// Only the scratch directory goes at exit. The world itself is left to the process end: RocksDB's
// and UCX's own statics may already be destroyed when exit handlers run.
void RemoveWorld() {
  if (!g_world) return;
  std::error_code ec;
  fs::remove_all(g_world->dir, ec);
}

// Replaces "@fid" by the next live fid and "@jwt" by the token of the last fid put in.
std::string ReplaceFids(std::string_view in, size_t& next) {
  std::string out;
  size_t pos = 0;
  while (true) {
    const size_t at = in.find('@', pos);
    out.append(in.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
    if (at == std::string_view::npos) break;
    const std::string_view rest = in.substr(at);
    const size_t n = g_world->fids.size();
    if (rest.starts_with("@fid")) {
      out += g_world->fids[next++ % n];
    } else if (rest.starts_with("@jwt")) {
      out += g_world->tokens[(next + n - 1) % n];
    } else {
      out += '@';
      pos = at + 1;
      continue;
    }
    pos = at + 4;
  }
  return out;
}

agent::HttpRequest ToRequest(std::string_view in) {
  agent::HttpRequest req;
  size_t next_fid = 0;
  const size_t head_end = in.find("\n\n");
  std::string_view head = in.substr(0, head_end);
  const size_t line_end = head.find('\n');
  std::string_view line = head.substr(0, line_end);
  head = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 1);
  const size_t sp = line.find(' ');
  req.method = std::string(line.substr(0, sp));
  if (sp != std::string_view::npos) req.target = ReplaceFids(line.substr(sp + 1), next_fid);
  while (!head.empty()) {
    const size_t nl = head.find('\n');
    std::string_view h = head.substr(0, nl);
    head = nl == std::string_view::npos ? std::string_view() : head.substr(nl + 1);
    const size_t colon = h.find(':');
    std::string_view value = colon == std::string_view::npos ? "" : h.substr(colon + 1);
    while (value.starts_with(' '))
      value.remove_prefix(1);
    req.headers.push_back({std::string(h.substr(0, colon)), ReplaceFids(value, next_fid)});
  }
  // In text order, so "@jwt" after an "@fid" always means that fid's token.
  if (head_end != std::string_view::npos) req.body = ReplaceFids(in.substr(head_end + 2), next_fid);
  req.remote = "127.0.0.1:1";
  req.request_id = "fuzz-1";
  return req;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  // Loopback TCP only: no device probing, nothing shared with other processes.
  setenv("UCX_TLS", "tcp", 0);
  setenv("UCX_NET_DEVICES", "lo", 0);
  setenv("UCX_LOG_LEVEL", "error", 0);
  auto* w = new World();
  std::string tmpl = (fs::temp_directory_path() / "swrdma-fuzz-agent.XXXXXX").string();
  if (!mkdtemp(tmpl.data())) Die("mkdtemp failed");
  w->dir = tmpl;
  g_world = w;
  std::atexit(RemoveWorld);  // before anything is created in the directory
  fs::create_directories(w->dir / "vols");
  GenerateOptions o;
  o.dir = w->dir / "vols";
  o.volume_id = 1;
  o.needles = 40;
  o.min_size = 1;
  o.max_size = 3000;
  o.gzip_fraction = 0.3;
  o.delete_fraction = 0.15;
  o.seed = 7;
  auto report = GenerateVolume(o, {});
  if (!report) Die(report.error().ToString());
  for (const auto& n : report->needles) {
    if (n.deleted) continue;
    w->fids.push_back(FormatFileId(n.fid));
    w->tokens.push_back(SignReadJwt(w->fids.back(), kReadKey, std::nullopt));
  }
  auto context = rdma::UcxContext::Create({});
  if (!context) Die(context.error().ToString());
  w->context.emplace(std::move(*context));
  auto index = NeedleIndex::Open(w->dir / "index");
  if (!index) Die(index.error().ToString());
  w->index = std::move(*index);
  agent::VolumeSetOptions vo;
  vo.dirs = {w->dir / "vols"};
  w->volumes = std::make_unique<agent::VolumeSet>(*w->index, *w->context, vo);
  if (w->volumes->Scan().exported != 1) Die("the generated volume was not exported");
  agent::ServiceOptions so;
  so.agent_version = "fuzz";
  so.worker_address = {1, 2, 3, 4};
  so.transports = {"tcp"};
  so.max_lookup_batch = 1000;
  so.max_sample = 1000;
  w->service = std::make_unique<agent::AgentService>(*w->volumes, so);
  w->service->SetReady(true);
  auto auth = agent::ReadAuthorizer::Open({.key = std::string(kReadKey)});
  if (!auth) Die(auth.error().ToString());
  w->auth = std::move(*auth);
  so.auth = w->auth.get();
  w->authed_service = std::make_unique<agent::AgentService>(*w->volumes, so);
  w->authed_service->SetReady(true);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const agent::AgentService* service = g_world->service.get();
  if (input.starts_with('!')) {
    service = g_world->authed_service.get();
    input.remove_prefix(1);
  }
  const agent::HttpRequest req = ToRequest(input);
  const agent::HttpResponse r = service->Handle(req);
  auto problem = agent::ResponseProblem(r);
  Check(!problem, problem ? *problem : "", &r);
  Check(r.status != 500, "bad input answered 500", &r);
  const std::string& body = r.shared_body ? *r.shared_body : r.body;
  if (r.content_type == kJsonMime) {
    Check(nlohmann::json::accept(body), "application/json body is not JSON", &r);
  } else if (r.content_type == kMsgpackMime) {
    DecodeLimits wide;
    wide.max_depth = 16;
    wide.max_array = wide.max_map = 1'000'000;
    wide.max_str = wide.max_bin = 1 << 24;
    Check(DecodeBody(body, WireFormat::kMsgpack, wide).has_value(), "msgpack body does not decode",
          &r);
  }
  return 0;
}
