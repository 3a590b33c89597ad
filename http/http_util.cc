#include "http/http_util.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cstring>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace swrdma::agent {

namespace {

char Lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// RFC 9110 token characters, the only ones allowed in a header name.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace

std::optional<std::string_view> HttpRequest::Header(std::string_view name) const {
  for (const auto& h : headers) {
    if (IEquals(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

std::string_view HttpRequest::Path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view HttpRequest::Query() const {
  auto q = target.find('?');
  return q == std::string::npos ? std::string_view() : std::string_view(target).substr(q + 1);
}

std::optional<std::string_view> HttpRequest::QueryParam(std::string_view name) const {
  std::string_view query = Query();
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

HttpResponse HttpResponse::JsonError(int status, std::string_view message) {
  return Json(status, "{\"error\":" + JsonQuote(message) + "}");
}

HttpResponse HttpResponse::Json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::Text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

Result<ListenAddress> ParseListenAddress(std::string_view spec) {
  auto bad = [&](std::string_view why) {
    return Error(Code::kInvalidArgument,
                 fmt::format("listen '{}': {}; expected HOST:PORT such as 0.0.0.0:18515, "
                             "127.0.0.1:0 or [::1]:18515",
                             spec, why));
  };
  std::string_view host, port;
  if (spec.starts_with('[')) {
    auto close = spec.find(']');
    if (close == std::string_view::npos) return bad("unterminated '['");
    if (close + 1 >= spec.size() || spec[close + 1] != ':') return bad("no ':PORT' after ']'");
    host = spec.substr(1, close - 1);
    port = spec.substr(close + 2);
    if (host.empty()) return bad("empty IPv6 address");
  } else {
    auto colon = spec.rfind(':');
    if (colon == std::string_view::npos) return bad("no ':PORT'");
    host = spec.substr(0, colon);
    port = spec.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad("IPv6 addresses need brackets");
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return bad(fmt::format("port '{}' is not a number 0..65535", port));
  }
  ListenAddress out;
  out.port = static_cast<uint16_t>(value);
  if (host.empty() || host == "*") {
    out.ip = "0.0.0.0";
  } else if (IEquals(host, "localhost")) {
    out.ip = "127.0.0.1";
  } else {
    out.ip = std::string(host);
  }
  return out;
}

Status ListenError(std::string_view spec, int err, std::string_view err_text) {
  std::string hint;
  Code code = Code::kUnavailable;
  switch (err) {
    case EADDRINUSE:
      hint = "; is another agent running? pick another address with --http";
      break;
    case EACCES:
      hint = "; ports below 1024 need root or CAP_NET_BIND_SERVICE";
      code = Code::kPermissionDenied;
      break;
    case EADDRNOTAVAIL:
      hint = "; no local interface has this address";
      break;
    case EAFNOSUPPORT:
      hint = "; this host has no such address family (IPv6 disabled?)";
      break;
    default:
      break;
  }
  return Status(code, fmt::format("listen {}: {}{}", spec, err_text, hint));
}

std::string JsonQuote(std::string_view s) {
  // Client bytes end up in error messages: invalid UTF-8 becomes U+FFFD so the body stays JSON.
  return nlohmann::json(std::string(s))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<std::string> ResponseProblem(const HttpResponse& response) {
  if (response.status < 200 || response.status > 599) {
    return fmt::format("handler returned status {} (must be 200..599)", response.status);
  }
  auto bad_value = [](std::string_view v) {
    return v.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
  };
  if (bad_value(response.content_type)) return "handler returned a Content-Type with CR/LF/NUL";
  for (const auto& h : response.headers) {
    if (h.name.empty() || !std::all_of(h.name.begin(), h.name.end(), IsTokenChar)) {
      return fmt::format("handler returned an invalid header name {}", JsonQuote(h.name));
    }
    if (bad_value(h.value)) {
      return fmt::format("handler returned header {} with CR/LF/NUL in its value", h.name);
    }
  }
  return std::nullopt;
}

bool ConnectionSaysClose(std::string_view value) {
  while (!value.empty()) {
    auto comma = value.find(',');
    if (IEquals(Trim(value.substr(0, comma)), "close")) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

Result<int> OpenListenSocket(std::string_view spec) {
  SWRDMA_ASSIGN_OR_RETURN(ListenAddress addr, ParseListenAddress(spec));
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (addr.ip.find(':') != std::string::npos) {
    family = AF_INET6;
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(addr.port);
    if (inet_pton(AF_INET6, addr.ip.c_str(), &a6->sin6_addr) != 1) {
      return Error(Code::kInvalidArgument, fmt::format("listen {}: bad IPv6 address", spec));
    }
    len = sizeof(sockaddr_in6);
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(addr.port);
    if (inet_pton(AF_INET, addr.ip.c_str(), &a4->sin_addr) != 1) {
      return Error(Code::kInvalidArgument, fmt::format("listen {}: bad IPv4 address", spec));
    }
    len = sizeof(sockaddr_in);
  }
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(ListenError(spec, errno, std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    const int err = errno;
    ::close(fd);
    return Error(ListenError(spec, err, std::strerror(err)));
  }
  return fd;
}

bool IsSaneRequestId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == ':' || ch == '-';
  });
}

}  // namespace swrdma::agent
