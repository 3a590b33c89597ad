// GET /<fid>: the volume server's read semantics, served from the exported mapping. For clients
// without UCX and for `--fallback http`; also what the benchmarks compare RDMA against.
//   400 unparsable fid; 404 unknown volume/needle, deleted, wrong cookie, expired TTL;
//   500 CRC mismatch; 206 + Content-Range for one satisfiable Range, 416 otherwise;
//   ETag "<8 hex of the CRC>"; gzip data sent as is when the client accepts gzip.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/agent_service.h"
#include "protocol/gzip.h"
#include "protocol/needle.h"

namespace swrdma::agent {
namespace {

// SeaweedFS's parseURLPath: "/3,01637037d6.jpg", "/3/01637037d6.jpg", "/3/01637037d6/name.jpg".
std::optional<std::string> FidFromPath(std::string_view path) {
  if (path.empty() || path[0] != '/') return std::nullopt;
  const auto slashes = std::count(path.begin(), path.end(), '/');
  auto strip_ext = [](std::string_view s) {
    const size_t dot = s.rfind('.');
    return dot != std::string_view::npos && dot > 0 ? s.substr(0, dot) : s;
  };
  if (slashes == 2 || slashes == 3) {
    std::string_view rest = path.substr(1);
    const size_t s1 = rest.find('/');
    std::string_view vid = rest.substr(0, s1);
    std::string_view fid = rest.substr(s1 + 1);
    if (slashes == 3) {
      fid = fid.substr(0, fid.find('/'));
    } else {
      fid = strip_ext(fid);
    }
    return fmt::format("{},{}", vid, fid);
  }
  std::string_view last = path.substr(path.rfind('/') + 1);
  if (last.find(',') == std::string_view::npos) return std::nullopt;
  return std::string(strip_ext(last));
}

// Seconds a SeaweedFS TTL lasts ({count, unit}: 1 m, 2 h, 3 d, 4 w, 5 M, 6 y).
uint64_t TtlSeconds(uint8_t count, uint8_t unit) {
  static constexpr uint64_t kUnit[] = {0, 60, 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400};
  return unit < std::size(kUnit) ? count * kUnit[unit] : 0;
}

struct ByteRange {
  uint64_t first = 0, last = 0;  // inclusive
};

// Parses one "bytes=a-b" / "bytes=a-" / "bytes=-n". nullopt: unsatisfiable or malformed (416);
// several ranges are answered with the whole body (allowed by RFC 9110).
std::optional<std::optional<ByteRange>> ParseRange(std::string_view h, uint64_t size) {
  if (!h.starts_with("bytes=")) return std::nullopt;
  h.remove_prefix(6);
  if (h.find(',') != std::string_view::npos) return std::optional<ByteRange>{};
  const size_t dash = h.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto num = [](std::string_view s, uint64_t& v) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size();
  };
  uint64_t a = 0, b = 0;
  std::string_view sa = h.substr(0, dash), sb = h.substr(dash + 1);
  if (sa.empty()) {  // suffix: last n bytes
    if (!num(sb, b) || b == 0 || size == 0) return std::nullopt;
    b = std::min(b, size);
    return std::optional<ByteRange>(ByteRange{size - b, size - 1});
  }
  if (!num(sa, a) || a >= size) return std::nullopt;
  if (sb.empty()) return std::optional<ByteRange>(ByteRange{a, size - 1});
  if (!num(sb, b) || b < a) return std::nullopt;
  return std::optional<ByteRange>(ByteRange{a, std::min(b, size - 1)});
}

std::string HttpDate(uint64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

}  // namespace

HttpResponse ServeNeedleOverHttp(const VolumeSet& volumes, const HttpRequest& req,
                                 const ReadAuthorizer* auth) {
  auto fid = FidFromPath(req.Path());
  if (!fid) {
    return HttpResponse::JsonError(
        400,
        fmt::format("'{}' is not a file id path such as /3,01637037d6", req.Path().substr(0, 80)));
  }
  if (auth != nullptr && auth->enabled()) {
    if (Status s = auth->Check(ReadAuthorizer::TokenOf(req), *fid); !s.ok()) {
      spdlog::debug("[{}] GET {}: {}", req.request_id, *fid, s.message());
      return WrongJwt();
    }
  }
  ResolvedNeedle found = volumes.Resolve(*fid);
  switch (found.result.status) {
    case LookupStatus::kOk:
      break;
    case LookupStatus::kBadFid:
      return HttpResponse::JsonError(400, found.result.error);
    default:
      return HttpResponse::JsonError(
          404, fmt::format("{}: {}", LookupStatusName(found.result.status), found.result.error));
  }
  const auto& exp = *found.exported;
  // Copy the record out of the mapping first: everything below works on this stable copy even if
  // the volume server appends or the file is replaced meanwhile.
  const auto src = exp.bytes().subspan(found.offset, found.result.length);
  std::vector<uint8_t> record(src.begin(), src.end());
  auto parsed = ParseNeedleRecord(record, exp.version());
  if (!parsed) return HttpResponse::JsonError(500, parsed.error().ToString());
  auto crc = VerifyNeedle(*parsed, {parsed->header.id, parsed->header.cookie, found.result.size});
  if (!crc) return HttpResponse::JsonError(500, crc.error().ToString());

  if (parsed->ttl_count && parsed->last_modified) {
    const uint64_t now = static_cast<uint64_t>(std::time(nullptr));
    if (parsed->last_modified + TtlSeconds(parsed->ttl_count, parsed->ttl_unit) < now) {
      return HttpResponse::JsonError(404, "needle expired (TTL)");
    }
  }

  HttpResponse resp;
  resp.status = 200;
  const std::string etag = fmt::format("\"{:08x}\"", Crc32c(parsed->data));
  resp.headers.push_back({"ETag", etag});
  if (auto inm = req.Header("If-None-Match"); inm && *inm == etag) {
    resp.status = 304;
    resp.content_type.clear();
    return resp;
  }
  resp.content_type = parsed->mime.empty() ? "application/octet-stream" : std::string(parsed->mime);
  if (!parsed->name.empty()) {
    resp.headers.push_back(
        {"Content-Disposition", fmt::format("inline; filename=\"{}\"", parsed->name)});
  }
  if (parsed->last_modified) {
    resp.headers.push_back({"Last-Modified", HttpDate(parsed->last_modified)});
  }
  resp.headers.push_back({"Accept-Ranges", "bytes"});

  std::string body;
  auto accept_enc = req.Header("Accept-Encoding");
  const bool client_gzip = accept_enc && accept_enc->find("gzip") != std::string_view::npos;
  if (parsed->is_gzipped() && client_gzip) {
    resp.headers.push_back({"Content-Encoding", "gzip"});
    body.assign(parsed->data.begin(), parsed->data.end());
  } else if (parsed->is_gzipped()) {
    auto plain = Gunzip(parsed->data);
    if (!plain) return HttpResponse::JsonError(500, plain.error().ToString());
    body.assign(plain->begin(), plain->end());
  } else {
    body.assign(parsed->data.begin(), parsed->data.end());
  }

  if (auto range = req.Header("Range"); range) {
    auto r = ParseRange(*range, body.size());
    if (!r) {
      HttpResponse bad = HttpResponse::JsonError(416, "range not satisfiable");
      bad.headers.push_back({"Content-Range", fmt::format("bytes */{}", body.size())});
      return bad;
    }
    if (*r) {
      const ByteRange br = **r;
      resp.status = 206;
      resp.headers.push_back(
          {"Content-Range", fmt::format("bytes {}-{}/{}", br.first, br.last, body.size())});
      body = body.substr(br.first, br.last - br.first + 1);
    }
  }
  resp.body = std::move(body);
  return resp;
}

}  // namespace swrdma::agent
