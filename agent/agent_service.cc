#include "agent/agent_service.h"

#include <charconv>

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
    if (path.starts_with("/v1/volumes/")) return Volume(req, path.substr(12));
    return ApiError(404, fmt::format("no such endpoint {}", path), f);
  }
  if (!get) return HttpResponse::JsonError(405, "the agent serves reads only: use GET or HEAD");
  return ServeNeedleOverHttp(volumes_, req);
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
  uint32_t vid = 0;
  auto [ptr, ec] = std::from_chars(vid_text.data(), vid_text.data() + vid_text.size(), vid);
  if (ec != std::errc() || ptr != vid_text.data() + vid_text.size() || vid_text.empty()) {
    return ApiError(
        400, fmt::format("bad volume id '{}': expected a decimal number", vid_text.substr(0, 32)),
        f);
  }
  auto map = volumes_.snapshot();
  auto it = map->volumes.find(vid);
  if (it == map->volumes.end()) {
    return ApiError(404, fmt::format("unknown_volume: volume {} is not exported here", vid), f);
  }
  return Encoded(200, ToJson(Describe(it->second)), f);
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
  return Encoded(200, ToJson(volumes_.Lookup(*lookup)), out);
}

}  // namespace swrdma::agent
