// A small hardened HTTP/1.1 server for the agent's key-exchange API.
//
// It knows nothing about SeaweedFS or UCX: the agent hands it one HttpHandler that turns a fully
// read request into a response. The server owns everything that protects the process from its
// clients: header and body limits, whole-request read timeouts (slowloris), idle keep-alive
// timeouts, write timeouts, a connection cap, and a graceful drain on Stop().
//
// Beast/Asio stay inside http_server.cc so that users of this header do not pay for them.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/status.h"

namespace swrdma::agent {

struct HttpServerOptions {
  // Addresses to listen on, each "HOST:PORT": "0.0.0.0:18515", "127.0.0.1:0", "[::1]:18515",
  // "localhost:18515" (= 127.0.0.1). Port 0 lets the kernel pick one; see HttpServer::ports().
  std::vector<std::string> listen = {"127.0.0.1:0"};
  // Threads running the io_context; the handler runs on them, so a slow handler occupies one.
  int threads = 2;
  // Request line + header fields, bytes; larger -> 431.
  size_t header_limit = 16 * 1024;
  // Request body, bytes; larger -> 413 (answered as soon as Content-Length says so).
  size_t body_limit = 1024 * 1024;
  // Whole request (first byte to last body byte; for the first request of a connection, from
  // accept) must arrive within this; otherwise the connection is closed (slowloris protection).
  std::chrono::milliseconds read_timeout = std::chrono::seconds(30);
  // A keep-alive connection waiting for its next request is closed after this.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  // Writing one response must finish within this.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  // After an error response or Connection: close, unread client bytes are discarded for at most
  // this long before closing, so the client sees the response rather than a reset.
  std::chrono::milliseconds linger_timeout = std::chrono::seconds(2);
  // Connections served at once; beyond this a new connection gets 503 and is closed.
  size_t max_connections = 1024;
  // Already listening sockets (OpenListenSocket), one per `listen` entry, used instead of binding
  // anew: a supervisor binds once and every restarted child serves the same sockets, so the port
  // stays and connections queue in the backlog during a restart. The server dups them.
  std::vector<int> listen_fds;
};

struct HttpHeader {
  std::string name;
  std::string value;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", "HEAD", ...; HEAD may be answered like GET
  std::string target;  // "/v1/volumes/3?x=1", exactly as sent
  int version = 11;    // 10 or 11
  std::vector<HttpHeader> headers;
  std::string body;
  std::string remote;      // peer "IP:PORT" ("[::1]:5555" for IPv6)
  std::string request_id;  // also sent back as X-Request-Id; put it in log lines

  // Value of the first header named `name` (case-insensitive), if any.
  std::optional<std::string_view> Header(std::string_view name) const;
  // The target without its query string.
  std::string_view Path() const;
  // The query string after '?', or empty.
  std::string_view Query() const;
  // The value of query parameter `name` ("" for "?name" alone), or nullopt. No percent-decoding:
  // the agent's parameters are numbers and tokens (base64url), which need none.
  std::optional<std::string_view> QueryParam(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;  // 200..599; anything else is answered as a 500 (handler bug)
  std::string content_type = "application/json";
  // Extra header fields. Content-Length and Transfer-Encoding are the server's and are ignored;
  // "Connection: close" closes the connection after this response.
  std::vector<HttpHeader> headers;
  std::string body;
  // If set, sent instead of `body` without copying (e.g. a cached document shared by requests).
  std::shared_ptr<const std::string> shared_body;

  // {"error":"<message>"} with proper JSON escaping.
  static HttpResponse JsonError(int status, std::string_view message);
  static HttpResponse Json(int status, std::string body);
  static HttpResponse Text(int status, std::string body);
};

// Runs concurrently on several server threads: it must be thread-safe. Exceptions it throws are
// answered with 500 {"error":"..."} and logged; they never reach the server.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Snapshot of the server's counters (monotonic except connections_open).
struct HttpServerStats {
  uint64_t connections_open = 0;     // being served now
  uint64_t connections_total = 0;    // accepted and served since start
  uint64_t connections_refused = 0;  // answered 503 because of max_connections
  uint64_t requests = 0;             // complete requests handed to the handler
  uint64_t handler_exceptions = 0;   // handler threw; answered 500
  uint64_t timeouts = 0;             // read of a started request, or a write, timed out
  // responses_by_class[k] = responses with status k00..k99, k in 1..5 (index 0 unused).
  std::array<uint64_t, 6> responses_by_class = {};
};

class HttpServer {
 public:
  // Binds every address in options.listen and starts options.threads threads. Fails with a
  // Status naming the address ("listen 0.0.0.0:18515: Address already in use; ...") and binds
  // nothing if any address fails.
  static Result<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                   HttpHandler handler);

  ~HttpServer();  // Stop(std::chrono::seconds(5)) if not stopped yet
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Bound ports, in the order of options.listen (the kernel's choice where the port was 0).
  const std::vector<uint16_t>& ports() const { return ports_; }
  // Bound addresses as "IP:PORT", in the order of options.listen.
  const std::vector<std::string>& endpoints() const { return endpoints_; }

  // Stops accepting and closes idle connections at once; requests already started may finish
  // (their response carries Connection: close) until `drain` has passed, then every connection
  // is closed and the threads are joined. A handler that is running cannot be interrupted, so
  // Stop also waits for it to return. Idempotent, but call it from one thread (main), never from
  // the handler.
  void Stop(std::chrono::milliseconds drain = std::chrono::seconds(5));

  HttpServerStats Stats() const;

  struct Core;  // shared with connections; defined in http_server.cc

 private:
  struct Runtime;  // io_context, listeners, threads; defined in http_server.cc
  HttpServer() = default;

  std::shared_ptr<Core> core_;
  std::unique_ptr<Runtime> runtime_;
  std::vector<uint16_t> ports_;
  std::vector<std::string> endpoints_;
  bool stopped_ = false;
};

}  // namespace swrdma::agent
