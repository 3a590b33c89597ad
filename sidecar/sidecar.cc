#include "sidecar/sidecar.h"

#include <charconv>
#include <chrono>
#include <optional>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "protocol/file_id.h"
#include "sidecar/filer_manifest.h"

namespace swrdma::client {

namespace {

using agent::HttpResponse;

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The mount sends values unescaped; curl and browsers escape them (%2C for ','). '+' is a space.
std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 && HexDigit(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

std::optional<std::string> Param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1));
    }
  }
  return std::nullopt;
}

// A decimal parameter; absent is `fallback`, malformed is an error naming it.
Result<uint64_t> Number(std::string_view query, std::string_view name, uint64_t fallback) {
  auto text = Param(query, name);
  if (!text || text->empty()) return fallback;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || p != text->data() + text->size()) {
    return Error(Code::kInvalidArgument, fmt::format("parameter {}='{}' is not a decimal number",
                                                     name, text->substr(0, 40)));
  }
  return v;
}

int HttpStatusFor(const Status& s) {
  switch (s.code()) {
    case Code::kInvalidArgument:
      return 400;
    case Code::kNotFound:
    case Code::kDeleted:
    case Code::kUnknownVolume:
      return 404;
    case Code::kPermissionDenied:
      return 403;
    case Code::kUnsupported:  // a chunk manifest (0x80 flag, or a filer one): not file bytes
      return 409;
    case Code::kResourceExhausted:
      return 503;
    case Code::kTimeout:
      return 504;
    default:  // unreachable agent, transport, checksum/corruption: the mount reads over HTTP
      return 502;
  }
}

bool AgentLevel(const Status& s) {
  return s.code() == Code::kUnavailable || s.code() == Code::kTimeout ||
         s.code() == Code::kRdmaTransport || s.code() == Code::kCancelled;
}

}  // namespace

Sidecar::Sidecar(SidecarOptions options, AgentDirectory directory,
                 std::unique_ptr<MasterClient> master)
    : options_(std::move(options)),
      directory_(std::move(directory)),
      master_(std::move(master)),
      pool_(AgentPoolOptions{.client = options_.client,
                             .clients_per_agent = options_.clients_per_agent}),
      cache_(options_.cache_mb << 20, options_.client.lookup_cache_ttl) {}

Sidecar::~Sidecar() {
  Stop();
}

Result<std::unique_ptr<Sidecar>> Sidecar::Start(const SidecarOptions& options) {
  SWRDMA_ASSIGN_OR_RETURN(auto directory,
                          AgentDirectory::Create(options.agent_port, options.agent_map));
  std::unique_ptr<MasterClient> master;
  if (!options.master_url.empty()) {
    MasterClientOptions mo;
    mo.master_url = options.master_url;
    mo.timeout = options.client.timeout;
    SWRDMA_ASSIGN_OR_RETURN(master, MasterClient::Create(mo));
  }
  std::unique_ptr<Sidecar> s(new Sidecar(options, std::move(directory), std::move(master)));
  agent::HttpServerOptions so;
  so.listen = {options.listen};
  so.threads = std::max(1, options.threads);
  so.body_limit = 64 * 1024;  // requests carry no body
  so.read_timeout = std::chrono::seconds(10);
  so.write_timeout = std::chrono::seconds(30);
  so.max_connections = 512;  // the mount keeps up to -rdma.maxConcurrent (64) open
  Sidecar* self = s.get();
  SWRDMA_ASSIGN_OR_RETURN(s->server_,
                          agent::HttpServer::Start(
                              so, [self](const agent::HttpRequest& r) { return self->Handle(r); }));
  return s;
}

void Sidecar::Stop() {
  if (server_) server_->Stop(std::chrono::seconds(2));
}

HttpResponse Sidecar::Handle(const agent::HttpRequest& request) {
  const std::string_view path = request.Path();
  const bool get = request.method == "GET" || request.method == "HEAD";
  if (path == "/health" && get) return Health();
  if (path == "/read" && get) return Read(request);
  if (path == "/stats" && get) return StatsJson();
  if (path == "/cleanup" && (request.method == "DELETE" || request.method == "POST")) {
    return HttpResponse::Json(200, R"({"status":"ok","temp_files":0})");
  }
  if (path == "/health" || path == "/read" || path == "/stats" || path == "/cleanup") {
    auto r = HttpResponse::JsonError(
        405, fmt::format("method {} not allowed on {}", request.method.substr(0, 16), path));
    r.headers.push_back({"Allow", path == "/cleanup" ? "DELETE" : "GET, HEAD"});
    return r;
  }
  return HttpResponse::JsonError(
      404, fmt::format("no such endpoint {}; this is the swrdma sidecar for weed mount "
                       "(GET /health, GET /read, DELETE /cleanup, GET /stats)",
                       path.substr(0, 100)));
}

HttpResponse Sidecar::Health() const {
  nlohmann::ordered_json j;
  j["status"] = "healthy";
  j["rdma"] = {{"enabled", true}, {"connected", pool_.connected() > 0 || read_ok_.load()}};
  j["agents_connected"] = pool_.connected();
  j["timestamp"] =
      fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                  std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
  return HttpResponse::Json(200, j.dump());
}

HttpResponse Sidecar::StatsJson() const {
  const SidecarStats s = stats();
  nlohmann::ordered_json j;
  j["reads"] = s.reads;
  j["errors"] = s.errors;
  j["bytes"] = s.bytes;
  j["tokens"] = s.tokens;
  j["past_end"] = s.past_end;
  j["at_end"] = s.at_end;
  j["filer_manifests"] = s.filer_manifests;
  j["agents_connected"] = s.agents_connected;
  const NeedleCacheStats c = cache_.stats();
  j["cache"] = {{"hits", c.hits}, {"misses", c.misses}, {"bytes", c.bytes}, {"entries", c.entries}};
  j["master"] = options_.master_url;
  j["agent_port"] = options_.agent_port;
  j["agent_map_entries"] = directory_.mapped();
  return HttpResponse::Json(200, j.dump());
}

SidecarStats Sidecar::stats() const {
  return {reads_.load(),    errors_.load(), bytes_.load(),           tokens_.load(),
          past_end_.load(), at_end_.load(), filer_manifests_.load(), pool_.connected()};
}

bool Sidecar::NeedsToken(const std::string& agent) {
  std::lock_guard lock(jwt_mu_);
  return needs_token_.contains(agent);
}

void Sidecar::SetNeedsToken(const std::string& agent) {
  std::lock_guard lock(jwt_mu_);
  needs_token_.insert(agent);
}

Result<std::vector<uint8_t>> Sidecar::ReadNeedle(const std::string& agent, const std::string& fid) {
  auto lease = pool_.Acquire(agent);
  if (!lease) return Error(lease.error());
  ReadOptions ro;
  bool have_token = false;
  auto fetch_token = [&]() -> Status {
    auto t = master_->ReadToken(fid);
    if (!t) return t.error();
    if (*t) tokens_.fetch_add(1, std::memory_order_relaxed);
    ro.jwt = t->value_or("");
    have_token = true;
    return Status::Ok();
  };
  if (master_ && NeedsToken(agent)) SWRDMA_RETURN_IF_ERROR(fetch_token());
  auto data = (*lease)->Read(fid, ro);
  if (!data && data.error().code() == Code::kPermissionDenied && master_ && !have_token) {
    SetNeedsToken(agent);  // from now on a token for every read on this agent
    SWRDMA_RETURN_IF_ERROR(fetch_token());
    data = (*lease)->Read(fid, ro);
  }
  if (!data) {
    if (AgentLevel(data.error())) lease->Discard();  // a fresh Client next time
    return Error(data.error());
  }
  // weed mount reads a filer manifest chunk's needle as if it held the file's bytes (its RDMA
  // path ignores is_chunk_manifest): refuse it, so the mount resolves the chunk over HTTP.
  if (data->name.empty() && data->mime.empty() && LooksLikeFilerChunkManifest(data->data)) {
    filer_manifests_.fetch_add(1, std::memory_order_relaxed);
    return Error(Code::kUnsupported,
                 fmt::format("{}: holds a filer chunk manifest (filer_pb.FileChunkManifest), not "
                             "file bytes; read the file's range over HTTP",
                             fid));
  }
  return std::move(data->data);
}

HttpResponse Sidecar::Read(const agent::HttpRequest& request) {
  const std::string_view query = request.Query();
  auto fail = [&](const Status& s) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    return HttpResponse::JsonError(HttpStatusFor(s), s.ToString());
  };
  // Which needle: file_id, or the legacy volume/needle/cookie triple.
  std::string fid_text;
  if (auto f = Param(query, "file_id"); f && !f->empty()) {
    fid_text = *f;
  } else if (Param(query, "volume") && Param(query, "needle")) {
    auto vid = Number(query, "volume", 0);
    auto nid = Number(query, "needle", 0);
    auto cookie = Number(query, "cookie", 0);
    if (!vid || !nid || !cookie) {
      return fail(!vid ? vid.error() : !nid ? nid.error() : cookie.error());
    }
    if (*vid > UINT32_MAX || *cookie > UINT32_MAX) {
      return fail(Status(Code::kInvalidArgument, "volume or cookie out of range"));
    }
    fid_text =
        FormatFileId(FileId{static_cast<uint32_t>(*vid), *nid, static_cast<uint32_t>(*cookie)});
  } else {
    return fail(Status(Code::kInvalidArgument,
                       "missing file_id (GET /read?file_id=3,01637037d6&offset=0&size=4096"
                       "&volume_server=http://HOST:PORT)"));
  }
  auto fid = ParseFileId(fid_text);
  if (!fid) return fail(fid.error());
  auto offset = Number(query, "offset", 0);
  if (!offset) return fail(offset.error());
  auto size = Number(query, "size", 0);
  if (!size) return fail(size.error());

  // Which agent: the volume server's, or the first replica's per the master.
  std::string volume_server = Param(query, "volume_server").value_or("");
  if (volume_server.empty()) {
    if (!master_) {
      return fail(Status(Code::kInvalidArgument,
                         "missing volume_server (or start the sidecar with --master URL)"));
    }
    auto locations = master_->Lookup(fid->volume_id);
    if (!locations) return fail(locations.error());
    volume_server = locations->front().url;
  }
  auto agent = directory_.AgentFor(volume_server);
  if (!agent) return fail(agent.error());

  bool hit = false;
  auto data = cache_.GetOrLoad(
      fmt::format("{} {}", *agent, fid_text), [&] { return ReadNeedle(*agent, fid_text); }, &hit);
  if (!data) return fail(data.error().WithContext(fmt::format("agent {}", *agent)));
  read_ok_.store(true, std::memory_order_relaxed);

  const std::vector<uint8_t>& bytes = **data;
  // Only ranges that end before the end of the data are served. weed mount (tryRDMARead) places
  // a FUSE read in one chunk by summing chunk sizes, asks for min(read size, rest of the chunk)
  // and returns whatever body arrives as the whole read. A read that straddles a chunk boundary
  // thus comes here as a range ending exactly at the needle's end, and serving it gives the
  // kernel a short read: it zero-fills the rest and takes the short end as the end of the file
  // (the real mount then shows files cut at the first chunk boundary). Such a range cannot be
  // told from one that merely fits, so every range reaching the end is refused (416), as is one
  // running past it: the mount then reads that piece over HTTP, correctly. size 0 ("to the end",
  // never sent by the mount) is still served, for curl and other callers.
  const bool past = *offset > bytes.size() || (*size != 0 && *size > bytes.size() - *offset);
  if (past || (*size != 0 && *size == bytes.size() - *offset)) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    (past ? past_end_ : at_end_).fetch_add(1, std::memory_order_relaxed);
    return HttpResponse::JsonError(
        416, fmt::format("{}: range offset {} size {} {} the end of its {} data bytes (weed mount "
                         "would take a short read for the end of the file; read it over HTTP)",
                         fid_text, *offset, *size, past ? "runs past" : "reaches", bytes.size()));
  }
  const size_t begin = *offset;
  const size_t n = *size == 0 ? bytes.size() - begin : static_cast<size_t>(*size);
  HttpResponse r;
  r.status = 200;
  r.content_type = "application/octet-stream";
  r.body.assign(reinterpret_cast<const char*>(bytes.data()) + begin, n);
  // The bytes came over RDMA (the sidecar's clients never fall back to HTTP), now or for the
  // request whose read a cache hit shares.
  r.headers = {{"X-RDMA-Used", "true"},
               {"X-Source", "rdma"},
               {"X-Cache", hit ? "hit" : "miss"},
               {"X-Needle-Data-Size", std::to_string(bytes.size())},
               {"X-Agent", *agent}};
  reads_.fetch_add(1, std::memory_order_relaxed);
  bytes_.fetch_add(n, std::memory_order_relaxed);
  return r;
}

}  // namespace swrdma::client
