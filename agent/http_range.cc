#include "agent/http_range.h"

#include <strings.h>

#include <charconv>
#include <ctime>
#include <optional>

#include <fmt/format.h>

namespace swrdma::agent {
namespace {

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' ||
                        s.front() == '\n' || s.front() == '\v' || s.front() == '\f'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' ||
                        s.back() == '\n' || s.back() == '\v' || s.back() == '\f'))
    s.remove_suffix(1);
  return s;
}

// strconv.ParseInt(s, 10, 64): an optional sign, then decimal digits only.
std::optional<int64_t> ParseInt(std::string_view s) {
  bool neg = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    neg = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s.front() < '0' || s.front() > '9') return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return neg ? -v : v;
}

const std::string* Find(const std::vector<HttpHeader>& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (strncasecmp(h.name.c_str(), name.data(), name.size()) == 0 && h.name.size() == name.size())
      return &h.value;
  }
  return nullptr;
}

std::optional<int64_t> ParseHttpTime(std::string_view v) {
  // http.ParseTime: RFC 1123, RFC 850 and asctime forms.
  const std::string s(v);
  for (const char* fmt :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = strptime(s.c_str(), fmt, &tm);
    if (end != nullptr && *end == '\0') return static_cast<int64_t>(timegm(&tm));
  }
  return std::nullopt;
}

}  // namespace

std::expected<std::vector<GoRange>, RangeError> GoParseRange(std::string_view s, uint64_t usize) {
  const auto size = static_cast<int64_t>(usize);
  std::vector<GoRange> ranges;
  if (!s.starts_with("bytes=")) return std::unexpected(RangeError::kInvalid);
  s.remove_prefix(6);
  bool no_overlap = false;
  while (true) {
    const size_t comma = s.find(',');
    std::string_view ra = TrimSpace(s.substr(0, comma));
    if (!ra.empty()) {
      const size_t dash = ra.find('-');
      if (dash == std::string_view::npos) return std::unexpected(RangeError::kInvalid);
      const std::string_view start = TrimSpace(ra.substr(0, dash));
      const std::string_view end = TrimSpace(ra.substr(dash + 1));
      GoRange r;
      if (start.empty()) {
        if (end.empty() || end.front() == '-') return std::unexpected(RangeError::kInvalid);
        auto i = ParseInt(end);
        if (!i || *i < 0) return std::unexpected(RangeError::kInvalid);
        const int64_t n = std::min(*i, size);
        if (size - n >= size) {
          no_overlap = true;
        } else {
          r.start = static_cast<uint64_t>(size - n);
          r.length = static_cast<uint64_t>(n);
          ranges.push_back(r);
        }
      } else {
        auto i = ParseInt(start);
        if (!i || *i < 0) return std::unexpected(RangeError::kInvalid);
        if (*i >= size) {
          no_overlap = true;
        } else {
          r.start = static_cast<uint64_t>(*i);
          if (end.empty()) {
            r.length = static_cast<uint64_t>(size - *i);
          } else {
            auto e = ParseInt(end);
            if (!e || *i > *e) return std::unexpected(RangeError::kInvalid);
            const int64_t last = std::min(*e, size - 1);
            r.length = static_cast<uint64_t>(last - *i + 1);
          }
          ranges.push_back(r);
        }
      }
    }
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  if (no_overlap && ranges.empty()) return std::unexpected(RangeError::kNoOverlap);
  return ranges;
}

bool IfRangeMatches(std::string_view if_range, const std::vector<HttpHeader>& headers) {
  if_range = TrimSpace(if_range);
  if (if_range.empty()) return true;
  if (if_range.starts_with('"') || if_range.starts_with("W/")) {
    const std::string* etag = Find(headers, "ETag");
    return etag != nullptr && !etag->empty() && !etag->starts_with("W/") && if_range == *etag;
  }
  auto date = ParseHttpTime(if_range);
  const std::string* lm = Find(headers, "Last-Modified");
  if (!date || lm == nullptr) return false;
  auto last = ParseHttpTime(*lm);
  return last && *date == *last;
}

void ApplyRange(const HttpRequest& req, std::string_view mime, std::string_view boundary,
                HttpResponse& resp, std::string& body) {
  auto header = req.Header("Range");
  if (!header || header->empty()) return;
  if (!IfRangeMatches(req.Header("If-Range").value_or(""), resp.headers)) return;
  const uint64_t size = body.size();
  auto ranges = GoParseRange(*header, size);
  if (!ranges) {
    // http.Error over the headers set so far.
    const bool no_overlap = ranges.error() == RangeError::kNoOverlap;
    if (no_overlap) resp.headers.push_back({"Content-Range", fmt::format("bytes */{}", size)});
    std::erase_if(resp.headers, [](const HttpHeader& h) {
      return strcasecmp(h.name.c_str(), "Content-Type") == 0;
    });
    resp.headers.push_back({"Content-Type", "text/plain; charset=utf-8"});
    resp.headers.push_back({"X-Content-Type-Options", "nosniff"});
    resp.status = 416;
    body = no_overlap ? "invalid range: failed to overlap\n" : "invalid range\n";
    return;
  }
  uint64_t sum = 0;
  for (const auto& r : *ranges)
    sum += r.length;
  if (sum > size || ranges->empty()) {
    body.clear();  // weed returns without writing: 200, no body
    return;
  }
  auto content_range = [&](const GoRange& r) {
    return fmt::format("bytes {}-{}/{}", r.start, r.start + r.length - 1, size);
  };
  resp.status = 206;
  if (ranges->size() == 1) {
    const GoRange& r = ranges->front();
    resp.headers.push_back({"Content-Range", content_range(r)});
    body = body.substr(r.start, r.length);
    return;
  }
  // Go's mime/multipart writer: "--b\r\n" first, "\r\n--b\r\n" between parts, headers sorted,
  // "\r\n--b--\r\n" at the end.
  std::string out;
  for (size_t k = 0; k < ranges->size(); ++k) {
    const GoRange& r = (*ranges)[k];
    out += fmt::format("{}--{}\r\nContent-Range: {}\r\nContent-Type: {}\r\n\r\n",
                       k == 0 ? "" : "\r\n", boundary, content_range(r), mime);
    out.append(body, r.start, r.length);
  }
  out += fmt::format("\r\n--{}--\r\n", boundary);
  body = std::move(out);
  std::erase_if(resp.headers, [](const HttpHeader& h) {
    return strcasecmp(h.name.c_str(), "Content-Type") == 0;
  });
  resp.headers.push_back(
      {"Content-Type", fmt::format("multipart/byteranges; boundary={}", boundary)});
}

}  // namespace swrdma::agent
