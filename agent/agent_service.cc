#include "agent/agent_service.h"

#include <charconv>
#include <chrono>
#include <optional>
#include <random>

#include <fmt/format.h>

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

// The value of `name` in a query string "a=1&b=2" (no percent-decoding: the values here are
// numbers), or nullopt.
std::optional<std::string_view> QueryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
  }
  return std::nullopt;
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
    HttpResponse r = HttpResponse::Text(200, metrics_.Render(*volumes_.snapshot()));
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
  HttpResponse r = ServeNeedleOverHttp(volumes_, req);
  metrics_.CountFallbackRead(r.status, r.body.size());
  return r;
}

HttpResponse AgentService::Info(const HttpRequest& req) const {
  AgentInfo info;
  info.agent_version = options_.agent_version;
  info.worker_address = options_.worker_address;
  info.transports = options_.transports;
  info.volume_count = volumes_.snapshot()->volumes.size();
  info.exposure = "region";
  return Encoded(200, ToJson(info), ResponseFormat(req));
}

HttpResponse AgentService::Volumes(const HttpRequest& req) const {
  VolumeList list;
  for (const auto& [vid, entry] : volumes_.snapshot()->volumes)
    list.volumes.push_back(Describe(entry));
  return Encoded(200, ToJson(list), ResponseFormat(req));
}

HttpResponse AgentService::Volume(const HttpRequest& req, std::string_view vid_text) const {
  const WireFormat f = ResponseFormat(req);
  const auto vid = ParseDecimal<uint32_t>(vid_text);
  if (!vid) return BadVolumeId(vid_text, f);
  auto map = volumes_.snapshot();
  auto it = map->volumes.find(*vid);
  if (it == map->volumes.end()) {
    return ApiError(404, fmt::format("unknown_volume: volume {} is not exported here", *vid), f);
  }
  return Encoded(200, ToJson(Describe(it->second)), f);
}

HttpResponse AgentService::Sample(const HttpRequest& req, std::string_view vid_text) const {
  const WireFormat f = ResponseFormat(req);
  const auto vid = ParseDecimal<uint32_t>(vid_text);
  if (!vid) return BadVolumeId(vid_text, f);
  const std::string_view query = req.Query();
  size_t n = 100;
  if (auto text = QueryParam(query, "n")) {
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
  if (auto text = QueryParam(query, "seed")) {
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
  const WireFormat out = ResponseFormat(req);
  auto ct = req.Header("Content-Type");
  const WireFormat in =
      ct && ct->find("json") != std::string_view::npos ? WireFormat::kJson : WireFormat::kMsgpack;
  DecodeLimits limits;
  limits.max_array = options_.max_lookup_batch;
  limits.max_str = 256;  // a fid is at most ~40 characters
  auto tree = DecodeBody(req.body, in, limits);
  if (!tree) return ApiError(400, tree.error().WithContext("lookup request").message(), out);
  auto lookup = LookupRequestFromJson(*tree);
  if (!lookup) return ApiError(400, lookup.error().WithContext("lookup request").message(), out);
  if (lookup->fids.size() > options_.max_lookup_batch) {
    return ApiError(400,
                    fmt::format("lookup request has {} fids; at most {} per request",
                                lookup->fids.size(), options_.max_lookup_batch),
                    out);
  }
  const auto start = std::chrono::steady_clock::now();
  LookupResponse resp = volumes_.Lookup(*lookup);
  for (const auto& r : resp.results)
    metrics_.CountLookup(r.status);
  metrics_.ObserveLookupRequest(
      resp.results.size(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return Encoded(200, ToJson(resp), out);
}

}  // namespace swrdma::agent
