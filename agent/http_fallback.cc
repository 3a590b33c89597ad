// GET /<fid>: the volume server's read semantics (weed/server/volume_server_handlers_read.go
// GetOrHeadHandler), served from the exported mapping. For clients without UCX and for
// `--fallback http`; also what the benchmarks compare RDMA against.
//   400 unparsable fid (also an _N past 2^64); 404 unknown volume/needle, deleted, wrong cookie,
//   expired TTL (weed's rule, NeedleExpired); 500 CRC mismatch; 304 for a matching
//   If-None-Match, else If-Modified-Since; Range as ProcessRangeRequest (agent/http_range.h):
//   206 for one range, 206 multipart/byteranges for several, 416, If-Range. Headers as weed sets
//   them: ETag "<stored checksum>", Last-Modified, Seaweed-* pairs, Content-Type from the stored
//   mime (unless application/octet-stream), else the name's extension, else sniffed from the body
//   as Go's server does; Content-Disposition as mime.FormatMediaType makes it (`dl=true`:
//   attachment). Compressed data is sent as stored with Content-Encoding: gzip when the client
//   accepts gzip and it is gzip, else decompressed (every member) or, when it is not gzip at all,
//   as stored.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <strings.h>

#include <nlohmann/json.hpp>

#include "agent/agent_service.h"
#include "agent/go_http.h"
#include "agent/http_range.h"
#include "protocol/gzip.h"
#include "protocol/needle.h"

namespace swrdma::agent {
namespace {

// SeaweedFS's parseURLPath: "/3,01637037d6.jpg", "/3/01637037d6.jpg", "/3/01637037d6/name.jpg".
struct UrlPath {
  std::string fid;       // "3,01637037d6"
  std::string filename;  // from the 3-slash form only
  std::string ext;       // ".jpg"
};
std::optional<UrlPath> ParseUrlPath(std::string_view path) {
  if (path.empty() || path[0] != '/') return std::nullopt;
  const auto slashes = std::count(path.begin(), path.end(), '/');
  UrlPath out;
  if (slashes == 2 || slashes == 3) {
    std::string_view rest = path.substr(1);
    const size_t s1 = rest.find('/');
    std::string_view vid = rest.substr(0, s1);
    std::string_view fid = rest.substr(s1 + 1);
    if (slashes == 3) {
      out.filename = std::string(fid.substr(fid.find('/') + 1));
      out.ext = std::string(GoFileExt(out.filename));
      fid = fid.substr(0, fid.find('/'));
    } else if (const size_t dot = fid.rfind('.'); dot != std::string_view::npos && dot > 0) {
      out.ext = std::string(fid.substr(dot));
      fid = fid.substr(0, dot);
    }
    out.fid = fmt::format("{},{}", vid, fid);
    return out;
  }
  std::string_view last = path.substr(path.rfind('/') + 1);
  if (last.find(',') == std::string_view::npos) return std::nullopt;
  if (const size_t dot = last.rfind('.'); dot != std::string_view::npos && dot > 0) {
    out.ext = std::string(last.substr(dot));
    last = last.substr(0, dot);
  }
  out.fid = std::string(last);
  return out;
}

// Go's http.CanonicalHeaderKey for the names of Seaweed-* pairs; nullopt for a name Go's server
// would drop when writing (not a valid header field name).
std::optional<std::string> CanonicalHeaderName(std::string_view k) {
  if (k.empty()) return std::nullopt;
  static constexpr std::string_view kTokenExtra = "!#$%&'*+-.^_`|~";
  std::string out(k);
  bool upper = true;
  for (char& c : out) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && kTokenExtra.find(c) == std::string_view::npos) return std::nullopt;
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    upper = c == '-';
  }
  return out;
}

// Go's server writes a header value with CR and LF turned into spaces, then trimmed.
std::string GoHeaderValue(std::string_view v) {
  std::string out(v);
  for (char& c : out) {
    if (c == '\r' || c == '\n' || c == '\0') c = ' ';
  }
  const size_t a = out.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  return out.substr(a, out.find_last_not_of(" \t") - a + 1);
}

// Response headers set by name, as Go's Header.Set: a later Set replaces an earlier one.
void SetHeader(std::vector<HttpHeader>& headers, std::string name, std::string value) {
  for (auto& h : headers) {
    if (strcasecmp(h.name.c_str(), name.c_str()) == 0) {
      h.value = std::move(value);
      return;
    }
  }
  headers.push_back({std::move(name), std::move(value)});
}
const std::string* FindHeader(const std::vector<HttpHeader>& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (strcasecmp(h.name.c_str(), std::string(name).c_str()) == 0) return &h.value;
  }
  return nullptr;
}

// Go's http.ParseTime of an If-Modified-Since value (RFC 1123 "Mon, 02 Jan 2006 15:04:05 GMT"
// only, as http.TimeFormat); nullopt when it does not parse.
std::optional<int64_t> ParseHttpDate(std::string_view v) {
  std::tm tm{};
  const std::string s(v);
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(timegm(&tm));
}

// weed's notModified (RFC 9110 13.2.2): If-None-Match (a weak-compared list, or "*") when
// present, else If-Modified-Since at or after Last-Modified.
bool NotModified(const HttpRequest& req, std::string_view etag, uint64_t last_modified) {
  if (auto inm = req.Header("If-None-Match"); inm) {
    std::string_view list = *inm;
    auto trim = [](std::string_view t) {
      while (!t.empty() && (t.front() == ' ' || t.front() == '\t'))
        t.remove_prefix(1);
      while (!t.empty() && (t.back() == ' ' || t.back() == '\t'))
        t.remove_suffix(1);
      return t;
    };
    if (trim(list) == "*") return true;
    auto canon = [&](std::string_view t) {
      t = trim(t);
      if (t.starts_with("W/")) t.remove_prefix(2);
      if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = t.substr(1, t.size() - 2);
      return t;
    };
    const std::string_view want = canon(etag);
    size_t start = 0;
    bool quoted = false;
    for (size_t i = 0; i <= list.size(); ++i) {
      if (i < list.size() && list[i] == '"') quoted = !quoted;
      if (i == list.size() || (list[i] == ',' && !quoted)) {
        std::string_view tag = trim(list.substr(start, i - start));
        if (!tag.empty() && canon(tag) == want) return true;
        start = i + 1;
      }
    }
    return false;
  }
  auto ims = req.Header("If-Modified-Since");
  if (!ims || ims->empty() || last_modified == 0) return false;
  auto t = ParseHttpDate(*ims);
  return t && *t >= static_cast<int64_t>(last_modified);
}

// Go's multipart.Writer boundary: 30 random bytes in hex.
std::string MultipartBoundary() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out;
  for (int i = 0; i < 30; ++i)
    out += fmt::format("{:02x}", static_cast<unsigned>(rng() & 0xff));
  return out;
}

std::string HttpDate(uint64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

// operation.ChunkManifest: {"name","mime","size","chunks":[{"fid","offset","size"}]}.
struct ChunkManifest {
  struct Chunk {
    std::string fid;
    int64_t offset = 0, size = 0;
  };
  std::string name, mime;
  std::vector<Chunk> chunks;  // sorted by offset, as LoadChunkManifest sorts them
};

// operation.LoadChunkManifest: the data (decompressed when flagged and gzip) as JSON; nullopt when
// it does not parse, and weed then serves the needle as it is.
std::optional<ChunkManifest> LoadChunkManifest(const NeedleRecord& rec) {
  std::vector<uint8_t> data(rec.data.begin(), rec.data.end());
  if (rec.is_gzipped()) {
    if (auto plain = DecompressNeedleData(rec.data)) data = std::move(*plain);
  }
  auto j = nlohmann::json::parse(data.begin(), data.end(), nullptr, false);
  if (!j.is_object()) return std::nullopt;
  ChunkManifest m;
  try {
    m.name = j.value("name", std::string());
    m.mime = j.value("mime", std::string());
    if (j.contains("chunks") && !j["chunks"].is_null()) {
      for (const auto& c : j.at("chunks")) {
        m.chunks.push_back({c.value("fid", std::string()), c.value("offset", int64_t{0}),
                            c.value("size", int64_t{0})});
      }
    }
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // a field of the wrong type: Go's json.Unmarshal fails too
  }
  std::sort(m.chunks.begin(), m.chunks.end(),
            [](const auto& a, const auto& b) { return a.offset < b.offset; });
  return m;
}

// The chunks of a manifest, each read as a plain GET of it would answer (decompressed), cut to
// its size: ChunkedFileReader. Only chunks exported by this agent can be read (the volume server
// asks the master for the others; the agent has no master): any other is an error, answered 500
// as weed answers a chunk it fails to read. With read tokens on, weed fetches the chunks without
// one, so every volume server refuses them and the read fails: the same here.
Result<std::string> JoinChunks(const VolumeSet& volumes, const ChunkManifest& m, bool auth_on) {
  std::string out;
  for (const auto& c : m.chunks) {
    if (auth_on) {
      return Error(Code::kPermissionDenied,
                   fmt::format("chunk {}: weed reads chunks without a read token, which volume "
                               "servers with a read key refuse",
                               c.fid));
    }
    ResolvedNeedle found = volumes.Resolve(c.fid);
    if (found.result.status != LookupStatus::kOk) {
      return Error(Code::kNotFound,
                   fmt::format("chunk {}: {} {}", c.fid, LookupStatusName(found.result.status),
                               found.result.error));
    }
    SWRDMA_ASSIGN_OR_RETURN(std::vector<uint8_t> record, CopyRecord(found));
    auto rec = ParseNeedleRecord(record, found.version);
    if (!rec) return Error(rec.error());
    if (auto crc = VerifyNeedle(*rec, {rec->header.id, rec->header.cookie, found.result.size});
        !crc) {
      return Error(crc.error());
    }
    std::vector<uint8_t> plain(rec->data.begin(), rec->data.end());
    if (rec->is_gzipped()) {
      auto p = DecompressNeedleData(rec->data);
      if (!p) return Error(p.error());
      plain = std::move(*p);
    }
    if (c.size < 0 || static_cast<uint64_t>(c.size) > plain.size()) {
      return Error(Code::kCorruption,
                   fmt::format("chunk {}: {} of {} bytes", c.fid, plain.size(), c.size));
    }
    out.append(reinterpret_cast<const char*>(plain.data()), static_cast<size_t>(c.size));
  }
  return out;
}

}  // namespace

HttpResponse ServeNeedleOverHttp(const VolumeSet& volumes, const HttpRequest& req,
                                 const ReadAuthorizer* auth) {
  auto url = ParseUrlPath(req.Path());
  if (!url) {
    return HttpResponse::JsonError(
        400,
        fmt::format("'{}' is not a file id path such as /3,01637037d6", req.Path().substr(0, 80)));
  }
  const std::string& fid = url->fid;
  if (auth != nullptr && auth->enabled()) {
    if (Status s = auth->Check(ReadAuthorizer::TokenOf(req), fid); !s.ok()) {
      spdlog::debug("[{}] GET {}: {}", req.request_id, fid, s.message());
      return WrongJwt();
    }
  }
  ResolvedNeedle found = volumes.Resolve(fid);
  switch (found.result.status) {
    case LookupStatus::kOk:
      break;
    case LookupStatus::kBadFid:
      return HttpResponse::JsonError(400, found.result.error);
    default:
      return HttpResponse::JsonError(
          404, fmt::format("{}: {}", LookupStatusName(found.result.status), found.result.error));
  }
  // Copy the record out of the mapping (or the EC shards) first: everything below works on this
  // stable copy even if the volume server appends or the file is replaced meanwhile.
  auto copied = CopyRecord(found);
  if (!copied) return HttpResponse::JsonError(404, copied.error().ToString());
  std::vector<uint8_t> record = std::move(*copied);
  auto parsed = ParseNeedleRecord(record, found.version);
  if (!parsed) return HttpResponse::JsonError(500, parsed.error().ToString());
  auto crc = VerifyNeedle(*parsed, {parsed->header.id, parsed->header.cookie, found.result.size});
  if (!crc) return HttpResponse::JsonError(500, crc.error().ToString());
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  if (NeedleExpired(*parsed, std::chrono::duration_cast<std::chrono::nanoseconds>(now).count())) {
    return HttpResponse::JsonError(404, "needle expired (TTL)");
  }

  HttpResponse resp;
  resp.status = 200;
  resp.content_type.clear();  // set below as weed sets it, or sniffed
  if (parsed->last_modified) {
    resp.headers.push_back({"Last-Modified", HttpDate(parsed->last_modified)});
  }
  // n.Etag(): the checksum as stored (for legacy-CRC needles that is the Value() form).
  const std::string etag = fmt::format("\"{:08x}\"", parsed->checksum);
  resp.headers.push_back({"ETag", etag});
  if (NotModified(req, etag, parsed->last_modified)) {
    resp.status = 304;
    return resp;
  }
  if (!parsed->pairs.empty()) {
    // weed ignores pairs that are not a JSON object (it logs and goes on).
    auto j = nlohmann::json::parse(parsed->pairs.begin(), parsed->pairs.end(), nullptr, false);
    if (j.is_object()) {
      for (const auto& [k, v] : j.items()) {
        auto name = CanonicalHeaderName(k);
        if (name && v.is_string()) {
          SetHeader(resp.headers, *name, GoHeaderValue(v.get<std::string>()));
        }
      }
    }
  }

  std::string filename = url->filename;
  if (!parsed->name.empty() && filename.empty()) filename = std::string(parsed->name);
  std::string mime;
  if (!parsed->mime.empty() && !parsed->mime.starts_with("application/octet-stream")) {
    mime = std::string(parsed->mime);
  }

  std::string body;
  bool encoded = false;
  std::optional<ChunkManifest> manifest;
  if (parsed->is_chunk_manifest() && req.QueryParam("cm").value_or("") != "false") {
    manifest = LoadChunkManifest(*parsed);  // weed serves the raw needle when it does not parse
  }
  if (manifest) {
    // tryHandleChunkedFile: the file the chunks make up, named and typed by the manifest.
    // tryHandleChunkedFile gets the name from the URL only (the needle's own name is not used).
    filename = url->filename.empty() ? manifest->name : url->filename;
    mime.clear();
    if (!manifest->mime.empty() && !manifest->mime.starts_with("application/octet-stream")) {
      mime = manifest->mime;
    }
    SetHeader(resp.headers, "X-File-Store", "chunked");
    auto joined = JoinChunks(volumes, *manifest, auth != nullptr && auth->enabled());
    if (!joined) {
      HttpResponse err = HttpResponse::JsonError(500, joined.error().ToString());
      for (const auto& h : resp.headers) {
        if (strcasecmp(h.name.c_str(), "ETag") != 0) err.headers.push_back(h);
      }
      return err;
    }
    body = std::move(*joined);
  } else if (parsed->is_gzipped()) {
    auto accept_enc = req.Header("Accept-Encoding");
    if (accept_enc && accept_enc->find("gzip") != std::string_view::npos &&
        IsGzipData(parsed->data)) {
      SetHeader(resp.headers, "Content-Encoding", "gzip");
      body.assign(parsed->data.begin(), parsed->data.end());
      encoded = true;
    } else {
      // Every gzip member; data that is not gzip at all is sent as stored, as weed does.
      auto plain = DecompressNeedleData(parsed->data);
      if (!plain) return HttpResponse::JsonError(500, plain.error().ToString());
      body.assign(plain->begin(), plain->end());
    }
  } else {
    body.assign(parsed->data.begin(), parsed->data.end());
  }

  // writeResponseContent: the type by the name's extension when the needle has none.
  if (mime.empty() && !filename.empty()) {
    if (auto e = GoFileExt(filename); !e.empty()) mime = GoTypeByExtension(e);
  }
  if (!mime.empty()) SetHeader(resp.headers, "Content-Type", mime);
  SetHeader(resp.headers, "Accept-Ranges", "bytes");
  if (!filename.empty() && FindHeader(resp.headers, "Content-Disposition") == nullptr) {
    bool dl = false;  // strconv.ParseBool
    if (auto v = req.QueryParam("dl"); v && !v->empty()) {
      dl = *v == "1" || *v == "t" || *v == "T" || *v == "true" || *v == "TRUE" || *v == "True";
    }
    SetHeader(resp.headers, "Content-Disposition",
              GoContentDisposition(dl ? "attachment" : "inline", filename));
  }

  ApplyRange(req, mime, MultipartBoundary(), resp, body);
  // Go's server sniffs a body it is given no Content-Type for (not an encoded one).
  if (const std::string* ct = FindHeader(resp.headers, "Content-Type"); ct != nullptr) {
    resp.content_type = *ct;
    std::erase_if(resp.headers, [](const HttpHeader& h) {
      return strcasecmp(h.name.c_str(), "Content-Type") == 0;
    });
  } else if (!encoded && !body.empty()) {
    resp.content_type =
        GoDetectContentType(std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size()));
  }
  resp.body = std::move(body);
  return resp;
}

}  // namespace swrdma::agent
