#include "agent/agent_service.h"

#include <algorithm>

#include <charconv>
#include <chrono>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/local_server.h"
#include "protocol/wire.h"

namespace swrdma::agent {
namespace {

bool WantsJson(const HttpRequest& req) {
  auto accept = req.Header("Accept");
  if (accept && accept->find("application/json") != std::string_view::npos) return true;
  return req.Query().find("format=json") != std::string_view::npos;
}

WireFormat ResponseFormat(const HttpRequest& req) {
  return WantsJson(req) ? WireFormat::kJson : WireFormat::kMsgpack;
}

HttpResponse Encoded(int status, const nlohmann::json& body, WireFormat f) {
  HttpResponse r;
  r.status = status;
  r.content_type = std::string(MimeOf(f));
  r.body = EncodeBody(body, f);
  return r;
}

HttpResponse ApiError(int status, std::string_view message, WireFormat f) {
  return Encoded(status, ErrorJson(message), f);
}

// A whole decimal number, nothing else.
template <typename T>
std::optional<T> ParseDecimal(std::string_view text) {
  T v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

// POST /v1/lookup?timing=1 or header X-Swrdma-Timing: 1 adds a `timing` object to the answer.
bool WantsTiming(const HttpRequest& req) {
  if (req.QueryParam("timing") == "1") return true;
  auto h = req.Header("X-Swrdma-Timing");
  return h && *h == "1";
}

uint64_t Micros(std::chrono::steady_clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

// Decodes a batch of fids (POST /v1/lookup): msgpack or JSON by Content-Type, within
// the unpack limits, at most `max_fids`. The error is the 400 answer to send.
template <typename T>
std::expected<T, HttpResponse> DecodeFidBatch(const HttpRequest& req, std::string_view what,
                                              size_t max_fids,
                                              Result<T> (*from_json)(const nlohmann::json&)) {
  const WireFormat out = ResponseFormat(req);
  auto ct = req.Header("Content-Type");
  const WireFormat in =
      ct && ct->find("json") != std::string_view::npos ? WireFormat::kJson : WireFormat::kMsgpack;
  DecodeLimits limits;
  limits.max_array = max_fids;
  limits.max_str = kMaxJwtBytes;  // fids are ~40 bytes, read tokens up to kMaxJwtBytes
  auto tree = DecodeBody(req.body, in, limits);
  if (!tree) {
    // An array beyond the limit is most likely too many fids: say so, and what the limit is.
    return std::unexpected(ApiError(
        400,
        fmt::format("{} (at most {} fids and tokens per request: --max-lookup-batch; split the "
                    "batch)",
                    tree.error().WithContext(what).message(), max_fids),
        out));
  }
  auto parsed = from_json(*tree);
  if (!parsed) {
    return std::unexpected(ApiError(400, parsed.error().WithContext(what).message(), out));
  }
  if (parsed->fids.size() > max_fids) {
    return std::unexpected(ApiError(
        400,
        fmt::format("{} has {} fids; at most {} per request", what, parsed->fids.size(), max_fids),
        out));
  }
  return std::move(*parsed);
}

HttpResponse BadVolumeId(std::string_view vid_text, WireFormat f) {
  return ApiError(
      400, fmt::format("bad volume id '{}': expected a decimal number", vid_text.substr(0, 32)), f);
}

}  // namespace

AgentService::AgentService(const VolumeSet& volumes, ServiceOptions options)
    : volumes_(volumes), options_(std::move(options)) {}

HttpResponse AgentService::Handle(const HttpRequest& req) const {
  const std::string_view path = req.Path();
  const bool get = req.method == "GET" || req.method == "HEAD";
  if (path == "/healthz") {
    if (!get) return HttpResponse::JsonError(405, "use GET");
    return HttpResponse::Json(200, R"({"status":"ok"})");
  }
  if (path == "/metrics") {
    if (!get) return HttpResponse::JsonError(405, "use GET");
    AgentMetrics::SecurityTotals totals;
    if (options_.auth != nullptr) totals.tokens_denied = options_.auth->denied();
    metrics_.SetSecurityTotals(totals);
    if (options_.reads != nullptr) metrics_.SetCheckedReadTotals(options_.reads->stats());
    metrics_.SetIndexCacheStats(volumes_.index().lookup_cache_stats());
    HttpResponse r = HttpResponse::Text(200, metrics_.Render(*volumes_.snapshot()));
    if (options_.local != nullptr) r.body += options_.local->RenderMetrics();
    r.content_type = "text/plain; version=0.0.4";
    return r;
  }
  if (path == "/readyz") {
    if (!get) return HttpResponse::JsonError(405, "use GET");
    if (!ready_.load()) {
      return HttpResponse::Json(503, R"({"status":"starting","ready":false})");
    }
    return HttpResponse::Json(200, fmt::format(R"({{"status":"ready","ready":true,"volumes":{}}})",
                                               volumes_.snapshot()->volumes.size()));
  }
  if (path.starts_with("/v1/")) {
    const WireFormat f = ResponseFormat(req);
    if (path == "/v1/lookup") {
      if (req.method != "POST") return ApiError(405, "POST a lookup request to /v1/lookup", f);
      return Lookup(req);
    }
    if (path == "/v1/verbs/grant") {
      if (req.method != "POST") return ApiError(405, "POST to /v1/verbs/grant", f);
      return VerbsGrant(req);
    }
    if (path == "/v1/push") {
      // Push (the agent writing records into client memory) needs a NIC that enforces the
      // client's keys; over tcp and shared memory UCX would emulate the writes with handlers that
      // serve any address (docs/security.md). Over verbs a client offers its landing buffer with
      // each checked read on the TCP read port (protocol/read_messages.h), not here.
      return ApiError(501,
                      "push reads go over verbs, with checked read requests on the TCP read port "
                      "(--exposure push; /v1/info verbs.mode); this endpoint is gone: upgrade "
                      "the client",
                      f);
    }
    if (!get) return ApiError(405, "use GET", f);
    if (path == "/v1/info") return Info(req);
    if (path == "/v1/volumes") return Volumes(req);
    if (path.starts_with("/v1/volumes/")) {
      std::string_view rest = path.substr(12);
      if (rest.ends_with("/sample")) return Sample(req, rest.substr(0, rest.size() - 7));
      return Volume(req, rest);
    }
    return ApiError(404, fmt::format("no such endpoint {}", path), f);
  }
  if (!get) return HttpResponse::JsonError(405, "the agent serves reads only: use GET or HEAD");
  HttpResponse r = ServeNeedleOverHttp(volumes_, req, options_.auth);
  metrics_.CountFallbackRead(r.status, r.body.size());
  return r;
}

HttpResponse AgentService::Info(const HttpRequest& req) const {
  AgentInfo info;
  info.agent_version = options_.agent_version;
  info.worker_address = options_.worker_address;
  info.transports = options_.transports;
  const auto map = volumes_.snapshot();
  info.volume_count = map->volumes.size() + map->ec.size();
  info.exposure = options_.exposure;
  nlohmann::json j = ToJson(info);
  j["shm_peer_failure"] = options_.shm_peer_failure;  // optional: older agents leave it out
  j["checked_reads"] = options_.reads != nullptr;     // likewise
  j["exposures"] = options_.exposures;                // transport -> exposure in force
  if (options_.tcp_read_port != 0) j["tcp_read"] = {{"port", options_.tcp_read_port}};
  if (options_.verbs_info) j["verbs"] = options_.verbs_info();
  if (options_.local != nullptr) {  // same-host reads: a client on this host may use the socket
    j["local_socket"] = options_.local->path().string();
    j["local_instance"] = options_.local->instance();
  }
  return Encoded(200, j, ResponseFormat(req));
}

HttpResponse AgentService::Volumes(const HttpRequest& req) const {
  VolumeList list;
  // The listing never carries keys when reads are authorized: a token covers one fid, a key the
  // whole volume.
  const bool keys = options_.exposure == "region" && !auth_on();
  const auto map = volumes_.snapshot();
  for (const auto& [vid, entry] : map->volumes) {
    list.volumes.push_back(Describe(entry));
    if (!keys) list.volumes.back().regions.clear();
  }
  for (const auto& [vid, e] : map->ec) {
    list.volumes.push_back(Describe(*e));
    if (!keys) list.volumes.back().ec_regions.clear();
  }
  std::sort(list.volumes.begin(), list.volumes.end(),
            [](const auto& a, const auto& b) { return a.volume_id < b.volume_id; });
  return Encoded(200, ToJson(list), ResponseFormat(req));
}

HttpResponse AgentService::Volume(const HttpRequest& req, std::string_view vid_text) const {
  const WireFormat f = ResponseFormat(req);
  const auto vid = ParseDecimal<uint32_t>(vid_text);
  if (!vid) return BadVolumeId(vid_text, f);
  auto map = volumes_.snapshot();
  auto it = map->volumes.find(*vid);
  VolumeDescriptor d;
  if (it != map->volumes.end()) {
    d = Describe(it->second);
  } else if (auto e = map->ec.find(*vid); e != map->ec.end()) {
    d = Describe(*e->second);
  } else {
    return ApiError(404, fmt::format("unknown_volume: volume {} is not exported here", *vid), f);
  }
  if (options_.exposure != "region") {
    d.regions.clear();  // checked: the agent's keys never leave it
    d.ec_regions.clear();
  } else if (auth_on() && (it != map->volumes.end() || !d.ec_regions.empty())) {
    // Region mode with tokens: the key goes to a holder of a valid token for a fid of this volume.
    auto claims = options_.auth->Verify(ReadAuthorizer::TokenOf(req));
    const std::string prefix = fmt::format("{},", *vid);
    if (!claims || !*claims || !(*claims)->fid.starts_with(prefix)) return WrongJwt();
  }
  return Encoded(200, ToJson(d), f);
}

HttpResponse AgentService::Sample(const HttpRequest& req, std::string_view vid_text) const {
  const WireFormat f = ResponseFormat(req);
  const auto vid = ParseDecimal<uint32_t>(vid_text);
  if (!vid) return BadVolumeId(vid_text, f);
  // Sampling lists fids: with tokens on, only their holders may know them.
  if (auth_on()) return WrongJwt();
  size_t n = 100;
  if (auto text = req.QueryParam("n")) {
    auto v = ParseDecimal<size_t>(*text);
    if (!v || *v == 0 || *v > options_.max_sample) {
      return ApiError(400,
                      fmt::format("bad n '{}': ask for 1 to {} fids per sample",
                                  text->substr(0, 32), options_.max_sample),
                      f);
    }
    n = *v;
  }
  uint64_t seed = 0;
  if (auto text = req.QueryParam("seed")) {
    auto v = ParseDecimal<uint64_t>(*text);
    if (!v) {
      return ApiError(
          400, fmt::format("bad seed '{}': expected a decimal number", text->substr(0, 32)), f);
    }
    seed = *v;
  } else {
    seed = (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  }
  auto sample = volumes_.Sample(*vid, n, seed);
  if (!sample) {
    if (sample.error().code() == Code::kUnknownVolume) {
      return ApiError(404, fmt::format("unknown_volume: {}", sample.error().message()), f);
    }
    return ApiError(500, sample.error().ToString(), f);
  }
  return Encoded(200, ToJson(*sample), f);
}

HttpResponse AgentService::Lookup(const HttpRequest& req) const {
  const auto decode_start = std::chrono::steady_clock::now();
  const WireFormat out = ResponseFormat(req);
  auto lookup =
      DecodeFidBatch(req, "lookup request", options_.max_lookup_batch, &LookupRequestFromJson);
  if (!lookup) return std::move(lookup.error());
  if (Status s = Authorize(req, lookup->fids, lookup->jwts); !s.ok()) {
    if (s.code() == Code::kInvalidArgument) return ApiError(400, s.message(), out);
    return WrongJwt();
  }
  const auto start = std::chrono::steady_clock::now();
  LookupResponse resp = volumes_.Lookup(*lookup);
  if (options_.exposure != "region") {
    for (auto& r : resp.results) {
      r.address = 0;  // checked: where a record lives in the agent is nobody's business
      r.ec_intervals.clear();
    }
  }
  for (const auto& r : resp.results)
    metrics_.CountLookup(r.status);
  const auto lookup_end = std::chrono::steady_clock::now();
  metrics_.ObserveLookupRequest(resp.results.size(),
                                std::chrono::duration<double>(lookup_end - start).count());
  if (!WantsTiming(req)) return Encoded(200, ToJson(resp), out);
  // Timing asked for (diagnostics): encode once to time it, then again with the numbers in.
  [[maybe_unused]] const auto timed = EncodeBody(ToJson(resp), out);
  resp.timing = LookupTiming{Micros(start - decode_start), Micros(lookup_end - start),
                             Micros(std::chrono::steady_clock::now() - lookup_end)};
  return Encoded(200, ToJson(resp), out);
}

HttpResponse AgentService::VerbsGrant(const HttpRequest& req) const {
  const WireFormat f = ResponseFormat(req);
  if (!options_.verbs_grant) {
    return ApiError(501, "this agent exports nothing over verbs (/v1/info has no \"verbs\")", f);
  }
  std::optional<int64_t> exp;
  if (auth_on()) {
    // Any fid's valid token: where region is in force a token already yields whole volumes
    // (--region-with-tokens); what is bound here is how long this connection may read.
    auto claims = options_.auth->Verify(ReadAuthorizer::TokenOf(req));
    if (!claims) return WrongJwt();
    if (*claims) exp = (*claims)->exp;
  }
  const auto hex = req.QueryParam("connection");
  std::array<uint8_t, 16> nonce{};
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  bool ok = hex && hex->size() == 2 * nonce.size();
  for (size_t i = 0; ok && i < nonce.size(); ++i) {
    const int hi = nibble((*hex)[2 * i]), lo = nibble((*hex)[2 * i + 1]);
    ok = hi >= 0 && lo >= 0;
    nonce[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (!ok) {
    return ApiError(400,
                    "?connection= must be the 32 hex digits of the nonce the verbs connection's "
                    "accept carried",
                    f);
  }
  auto granted = options_.verbs_grant(nonce, exp);
  if (!granted) {
    if (granted.error().code() == Code::kPermissionDenied) return WrongJwt();
    if (granted.error().code() == Code::kNotFound)
      return ApiError(404, granted.error().message(), f);
    return ApiError(500, granted.error().message(), f);
  }
  nlohmann::json j = {{"protocol", kProtocolVersion}, {"granted", true}};
  j["until_ms"] = *granted ? nlohmann::json(**granted) : nlohmann::json();
  return Encoded(200, j, f);
}

Status AgentService::Authorize(const HttpRequest& req, std::span<const std::string> fids,
                               std::span<const std::string> jwts) const {
  if (!auth_on()) return Status::Ok();
  if (jwts.size() > 1 && jwts.size() != fids.size()) {
    return Status(Code::kInvalidArgument,
                  fmt::format("{} jwts for {} fids: send none, one for all, or one per fid",
                              jwts.size(), fids.size()));
  }
  const std::string request_token = jwts.empty() ? ReadAuthorizer::TokenOf(req) : std::string();
  for (size_t i = 0; i < fids.size(); ++i) {
    std::string_view token = jwts.empty() ? request_token : jwts[jwts.size() == 1 ? 0 : i];
    if (Status s = options_.auth->Check(token, fids[i]); !s.ok()) {
      spdlog::debug("[{}] {} {}: {}", req.request_id, req.method, fids[i].substr(0, 64),
                    s.message());
      return s;
    }
  }
  return Status::Ok();
}

}  // namespace swrdma::agent
