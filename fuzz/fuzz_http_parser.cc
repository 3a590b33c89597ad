// Fuzzes the HTTP/1.1 request parsing the agent's server runs on untrusted bytes: Beast's
// request_parser with the agent's limits (http/http_session.cc ReadNext: HttpServerOptions
// header_limit and body_limit), fed the way a socket delivers it (in pieces whose sizes come from
// the input), then the header handling of http/http_util.h on whatever parsed. Input: 1 byte
// giving the piece size (1..256), then the raw bytes of one or more pipelined requests.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <source_location>
#include <string>
#include <string_view>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "fuzz/fuzz_check.h"
#include "http/http_server.h"
#include "http/http_util.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

using swrdma::fuzz::Check;

// What Session::Handle builds from a parsed request.
void UseRequest(http::request<http::string_body>& req) {
  using swrdma::agent::HttpRequest;
  HttpRequest request;
  request.method = std::string(req.method_string());
  request.target = std::string(req.target());
  request.version = static_cast<int>(req.version());
  Check(request.version == 10 || request.version == 11);
  for (const auto& field : req) {
    request.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  }
  request.body = std::move(req.body());
  (void)request.Path();
  (void)request.Query();
  if (auto c = request.Header("Connection")) (void)swrdma::agent::ConnectionSaysClose(*c);
  (void)req.keep_alive();
  // A handler echoing request headers back must be caught by ResponseProblem when unsafe.
  swrdma::agent::HttpResponse echo;
  echo.headers = request.headers;
  (void)swrdma::agent::ResponseProblem(echo);
  (void)swrdma::agent::JsonQuote(request.target);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const swrdma::agent::HttpServerOptions defaults;
  const size_t piece = data[0] % 256 + 1;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  // Up to 4 pipelined requests; each parser sees what is left, the way the session's buffer does.
  for (int n = 0; n < 4 && !input.empty(); ++n) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(defaults.header_limit));
    parser.body_limit(defaults.body_limit);
    beast::error_code ec;
    size_t used = 0;       // bytes the parser consumed
    size_t available = 0;  // bytes "received" so far
    bool need_more = true;
    while (!parser.is_done()) {
      if (need_more) {
        if (available == input.size()) break;  // the client stopped sending
        available = std::min(input.size(), available + piece);
      }
      ec = {};
      const size_t got = parser.put(net::buffer(input.data() + used, available - used), ec);
      Check(got <= available - used);
      used += got;
      if (ec && ec != http::error::need_more) break;
      need_more = ec == http::error::need_more || used == available || got == 0;
    }
    if (!parser.is_done()) {
      if (!ec || ec == http::error::need_more) parser.put_eof(ec);
      return 0;  // the session answers 400/413/431 or closes; nothing more to read
    }
    UseRequest(parser.get());
    input.remove_prefix(used);
  }
  return 0;
}
