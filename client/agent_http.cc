#include "client/agent_http.h"

#include <charconv>
#include <optional>

#include <fmt/format.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace swrdma::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
// Boost 1.74's Beast takes boost::string_view.
beast::string_view Sv(std::string_view s) {
  return {s.data(), s.size()};
}
}  // namespace

Result<HttpUrl> ParseHttpUrl(std::string_view url, uint16_t default_port) {
  std::string_view s = url;
  if (s.starts_with("http://")) s.remove_prefix(7);
  if (s.starts_with("https://")) {
    return Error(Code::kInvalidArgument, fmt::format("'{}': https is not supported; the agent "
                                                     "speaks plain http (put it on a trusted "
                                                     "network or use JWT)",
                                                     url));
  }
  HttpUrl out;
  const size_t slash = s.find('/');
  if (slash != std::string_view::npos) {
    out.base_path = std::string(s.substr(slash));
    while (!out.base_path.empty() && out.base_path.back() == '/')
      out.base_path.pop_back();
    s = s.substr(0, slash);
  }
  std::string_view port_text;
  if (s.starts_with('[')) {
    const size_t close = s.find(']');
    if (close == std::string_view::npos) {
      return Error(Code::kInvalidArgument, fmt::format("'{}': unterminated IPv6 address", url));
    }
    out.host = std::string(s.substr(1, close - 1));
    if (close + 1 < s.size() && s[close + 1] == ':') port_text = s.substr(close + 2);
  } else {
    const size_t colon = s.rfind(':');
    out.host = std::string(s.substr(0, colon));
    if (colon != std::string_view::npos) port_text = s.substr(colon + 1);
  }
  if (out.host.empty()) {
    return Error(Code::kInvalidArgument,
                 fmt::format("'{}' names no host; use http://HOST:PORT", url));
  }
  out.port = default_port;
  if (!port_text.empty()) {
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), out.port);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || out.port == 0) {
      return Error(Code::kInvalidArgument, fmt::format("'{}' has a bad port", url));
    }
  }
  return out;
}

std::string HttpReply::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, Sv(name))) return v;
  }
  return {};
}

struct AgentHttp::Impl {
  asio::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
};

AgentHttp::AgentHttp(HttpUrl url, std::chrono::milliseconds timeout)
    : url_(std::move(url)), timeout_(timeout), impl_(std::make_unique<Impl>()) {}

AgentHttp::~AgentHttp() = default;

Result<HttpReply> AgentHttp::Request(
    std::string_view method, std::string_view target, std::string_view body,
    std::string_view content_type, std::string_view accept,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  const std::string where =
      fmt::format("{} http://{}:{}{}{}", method, url_.host, url_.port, url_.base_path, target);
  http::request<http::string_body> req{http::string_to_verb(Sv(method)),
                                       url_.base_path + std::string(target), 11};
  req.set(http::field::host, fmt::format("{}:{}", url_.host, url_.port));
  req.set(http::field::user_agent, "swrdma-client");
  req.keep_alive(true);
  if (!accept.empty()) req.set(http::field::accept, Sv(accept));
  for (const auto& [k, v] : headers)
    req.set(k, v);
  if (!body.empty() || method == "POST") {
    req.body() = std::string(body);
    if (!content_type.empty()) req.set(http::field::content_type, Sv(content_type));
    req.prepare_payload();
  }

  // Two attempts: a kept-alive connection the agent has closed fails at once and is reopened.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool fresh = !impl_->stream.has_value();
    beast::error_code ec;
    bool done = false;
    http::response<http::string_body> res;
    impl_->ioc.restart();
    if (fresh) {
      impl_->stream.emplace(impl_->ioc);
      impl_->buffer.clear();
      // Beast reads at most the buffer's free capacity per call: without room a 1 MiB body
      // arrives 512 bytes per read.
      impl_->buffer.reserve(256 << 10);
      tcp::resolver resolver(impl_->ioc);
      auto endpoints = resolver.resolve(url_.host, std::to_string(url_.port), ec);
      if (ec) {
        impl_->stream.reset();
        return Error(Code::kUnavailable,
                     fmt::format("{}: resolving {}: {}", where, url_.host, ec.message()));
      }
      impl_->stream->expires_after(timeout_);
      impl_->stream->async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) {
        ec = e;
        done = true;
      });
      impl_->ioc.run();
      if (ec) {
        impl_->stream.reset();
        const Code code = ec == beast::error::timeout ? Code::kTimeout : Code::kUnavailable;
        return Error(code, fmt::format("{}: connect: {}; is swrdma-agent running there?", where,
                                       ec.message()));
      }
      impl_->ioc.restart();
    }
    done = false;
    impl_->stream->expires_after(timeout_);
    http::async_write(*impl_->stream, req, [&](beast::error_code e, size_t) {
      ec = e;
      if (ec) {
        done = true;
        return;
      }
      http::async_read(*impl_->stream, impl_->buffer, res, [&](beast::error_code e2, size_t) {
        ec = e2;
        done = true;
      });
    });
    impl_->ioc.run();
    if (ec || !done) {
      impl_->stream.reset();
      if (!fresh && ec != beast::error::timeout) continue;  // stale keep-alive: retry once
      const Code code = ec == beast::error::timeout ? Code::kTimeout : Code::kUnavailable;
      return Error(code, fmt::format("{}: {}", where, ec.message()));
    }
    HttpReply reply;
    reply.status = static_cast<int>(res.result_int());
    reply.content_type = std::string(res[http::field::content_type]);
    for (const auto& f : res)
      reply.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    reply.body = std::move(res.body());
    if (!res.keep_alive()) impl_->stream.reset();
    return reply;
  }
  return Error(Code::kUnavailable, fmt::format("{}: connection closed by the agent", where));
}

}  // namespace swrdma::client
