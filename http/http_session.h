// Internals of HttpServer shared by http_server.cc and http_session.cc: the state the server
// shares with its connections (HttpServer::Core) and the per-connection Session. Includes Beast;
// nothing outside the HTTP server should include it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "http/http_server.h"

namespace swrdma::agent {
namespace http_detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

class Session;

// "1.2.3.4:80" or "[::1]:80".
std::string FormatEndpoint(const tcp::endpoint& ep);

}  // namespace http_detail

// What the server shares with its sessions. Sessions hold it by shared_ptr, so it outlives the
// io_context, whose destruction is where the last sessions die.
struct HttpServer::Core {
  HttpServerOptions options;
  HttpHandler handler;
  std::string id_prefix;  // random per server, so ids from two runs do not collide in logs
  std::atomic<uint64_t> next_request_id{1};
  std::atomic<bool> stopping{false};

  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> connections_refused{0};
  std::atomic<uint64_t> refused_open{0};  // refused connections still being answered
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> handler_exceptions{0};
  std::atomic<uint64_t> timeouts{0};
  std::array<std::atomic<uint64_t>, 6> responses_by_class{};

  // Every live session, so that Stop() can reach them; guarded by mu.
  std::mutex mu;
  std::condition_variable drained;
  std::unordered_map<uint64_t, std::weak_ptr<http_detail::Session>> live;
  uint64_t next_session_id = 1;

  std::string NextRequestId() {
    return fmt::format("{}-{}", id_prefix, next_request_id.fetch_add(1, std::memory_order_relaxed));
  }
  void CountResponse(int status) {
    int k = status / 100;
    if (k >= 1 && k <= 5) responses_by_class[k].fetch_add(1, std::memory_order_relaxed);
  }
  // Reserves a connection slot unless max_connections are already served.
  bool TryAdmit() {
    uint64_t open = connections_open.load();
    while (open < options.max_connections) {
      if (connections_open.compare_exchange_weak(open, open + 1)) return true;
    }
    return false;
  }
  uint64_t Register(std::weak_ptr<http_detail::Session> session) {
    std::lock_guard lock(mu);
    uint64_t id = next_session_id++;
    live.emplace(id, std::move(session));
    return id;
  }
  void Unregister(uint64_t id) {
    std::lock_guard lock(mu);
    live.erase(id);
    if (live.empty()) drained.notify_all();
  }
  // Strong references taken under the lock but released by the caller outside it: the last
  // reference may destroy a session, whose destructor takes the lock.
  std::vector<std::shared_ptr<http_detail::Session>> LiveSessions() {
    std::vector<std::shared_ptr<http_detail::Session>> out;
    std::lock_guard lock(mu);
    for (auto& [id, weak] : live) {
      if (auto s = weak.lock()) out.push_back(std::move(s));
    }
    return out;
  }
  bool WaitDrained(http_detail::Clock::time_point deadline) {
    std::unique_lock lock(mu);
    return drained.wait_until(lock, deadline, [&] { return live.empty(); });
  }
  size_t LiveCount() {
    std::lock_guard lock(mu);
    return live.size();
  }
};

namespace http_detail {

// One client connection: reads a request, calls the handler, writes the answer, repeats while
// keep-alive holds. All members are touched only on the connection's strand, except by
// CloseNow() once no io thread runs any more.
class Session : public std::enable_shared_from_this<Session> {
 public:
  using Core = HttpServer::Core;

  // `refused`: the connection exceeds max_connections and only gets a 503. The caller has
  // already counted it in connections_open (or refused_open); the destructor uncounts it.
  Session(tcp::socket&& socket, std::shared_ptr<Core> core, bool refused);
  ~Session();

  void Start();
  // Server stopping: a connection waiting for a request closes now; one inside a request
  // finishes it (answered with Connection: close).
  void PostStopping();
  void PostClose();
  // Only once no io thread runs.
  void CloseNow() { Close(); }

 private:
  enum class Phase { kIdle, kReading, kHandling, kWriting, kLingering, kClosed };

  void Begin();
  void ReadNext();
  void OnIdleRead(beast::error_code ec, size_t n);
  void ReadHeader();
  void OnHeader(beast::error_code ec, size_t);
  void OnContinueWritten(beast::error_code ec, size_t);
  void ReadBody();
  void OnBody(beast::error_code ec, size_t);
  void OnReadError(beast::error_code ec);
  void Handle();
  // Sends `response`; a new request id is drawn when none is given.
  void Respond(HttpResponse response, int version, bool head, bool close,
               std::string request_id = {});
  void OnWrite(beast::error_code ec, size_t);
  // Half-closes, then discards what the client still sends for a moment, so that a client
  // still sending (say the body we refused with 413) reads our answer instead of a TCP reset.
  void Linger();
  void LingerRead();
  void OnLingerRead(beast::error_code ec, size_t n);
  void Close();

  beast::tcp_stream stream_;
  std::shared_ptr<Core> core_;
  bool refused_;
  uint64_t id_ = 0;
  std::string remote_;
  Phase phase_ = Phase::kIdle;
  bool first_request_ = true;
  bool close_after_write_ = false;
  Clock::time_point deadline_;  // the request being read must be complete by then
  size_t lingered_bytes_ = 0;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpResponse response_;  // owns the bytes message_ points into while writing
  http::response<http::span_body<const char>> message_;
};

}  // namespace http_detail
}  // namespace swrdma::agent
