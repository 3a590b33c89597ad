// HttpServer: listeners, the io_context and its threads, Start/Stop. Structure follows the Beast
// async server examples: a Listener per address accepts sockets onto their own strand, and a
// Session per connection (http_session.cc) reads one request at a time, calls the handler and
// writes the answer. Everything a client can do wrong ends in a small JSON error answer and/or a
// close; nothing it does reaches the rest of the process.
#include "http/http_server.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <exception>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "http/http_session.h"
#include "http/http_util.h"
#include "protocol/thread_name.h"

namespace swrdma::agent {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using http_detail::Clock;
using http_detail::FormatEndpoint;
using http_detail::Session;

namespace {

// Accepts connections on one address, each onto its own strand.
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& ioc, tcp::acceptor acceptor, std::shared_ptr<HttpServer::Core> core)
      : ioc_(ioc),
        acceptor_(std::move(acceptor)),
        retry_(acceptor_.get_executor()),
        core_(std::move(core)) {}

  void Accept() {
    acceptor_.async_accept(net::make_strand(ioc_),
                           beast::bind_front_handler(&Listener::OnAccept, shared_from_this()));
  }
  void PostClose() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] { self->Close(); });
  }
  // Only once no io thread runs.
  void Close() {
    beast::error_code ec;
    acceptor_.close(ec);
    retry_.cancel();
  }

 private:
  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open() || ec == net::error::operation_aborted) return;
    if (ec) {
      // Typically EMFILE: back off instead of spinning on a listen queue we cannot drain.
      spdlog::warn("http: accept failed: {}; retrying in 100 ms", ec.message());
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
        if (!wait_ec && self->acceptor_.is_open()) self->Accept();
      });
      return;
    }
    if (core_->TryAdmit()) {
      core_->connections_total.fetch_add(1, std::memory_order_relaxed);
      std::make_shared<Session>(std::move(socket), core_, false)->Start();
    } else {
      core_->connections_refused.fetch_add(1, std::memory_order_relaxed);
      // Answering costs a socket for up to linger_timeout; under a flood just drop.
      if (core_->refused_open.fetch_add(1) < core_->options.max_connections) {
        std::make_shared<Session>(std::move(socket), core_, true)->Start();
      } else {
        core_->refused_open.fetch_sub(1);
      }
    }
    Accept();
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;
  std::shared_ptr<HttpServer::Core> core_;
};

}  // namespace

struct HttpServer::Runtime {
  explicit Runtime(int threads) : ioc(threads) {}
  net::io_context ioc;  // first member: destroyed last
  std::vector<std::shared_ptr<Listener>> listeners;
  std::vector<std::thread> threads;
};

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                      HttpHandler handler) {
  if (options.listen.empty()) return Error(Code::kInvalidArgument, "http: no listen address");
  if (options.threads < 1 || options.threads > 256) {
    return Error(Code::kInvalidArgument,
                 fmt::format("http: threads must be 1..256, got {}", options.threads));
  }
  if (options.max_connections < 1) {
    return Error(Code::kInvalidArgument, "http: max_connections must be at least 1");
  }
  if (!handler) return Error(Code::kInvalidArgument, "http: no handler");

  std::unique_ptr<HttpServer> server(new HttpServer());
  server->core_ = std::make_shared<Core>();
  server->core_->options = options;
  server->core_->handler = std::move(handler);
  server->core_->id_prefix = fmt::format("{:08x}", std::random_device{}());
  server->runtime_ = std::make_unique<Runtime>(options.threads);
  auto& rt = *server->runtime_;

  if (!options.listen_fds.empty() && options.listen_fds.size() != options.listen.size()) {
    return Error(Code::kInvalidArgument, "http: listen_fds must match listen one to one");
  }
  for (size_t li = 0; li < options.listen.size(); ++li) {
    const std::string& spec = options.listen[li];
    SWRDMA_ASSIGN_OR_RETURN(ListenAddress addr, ParseListenAddress(spec));
    beast::error_code ec;
    auto address = net::ip::make_address(addr.ip, ec);
    if (ec) {
      return Error(Code::kInvalidArgument,
                   fmt::format("listen {}: '{}' is not an IP address", spec, addr.ip));
    }
    tcp::endpoint endpoint(address, addr.port);
    tcp::acceptor acceptor(net::make_strand(rt.ioc));
    if (!options.listen_fds.empty()) {
      const int fd = ::dup(options.listen_fds[li]);
      if (fd < 0) return Error(ListenError(spec, errno, std::strerror(errno)));
      acceptor.assign(endpoint.protocol(), fd, ec);
    } else {
      acceptor.open(endpoint.protocol(), ec);
      if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
      if (!ec) acceptor.bind(endpoint, ec);
      if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    }
    if (ec) return Error(ListenError(spec, ec.value(), ec.message()));
    auto local = acceptor.local_endpoint(ec);
    if (ec) return Error(ListenError(spec, ec.value(), ec.message()));
    server->ports_.push_back(local.port());
    server->endpoints_.push_back(FormatEndpoint(local));
    rt.listeners.push_back(std::make_shared<Listener>(rt.ioc, std::move(acceptor), server->core_));
  }

  for (auto& listener : rt.listeners)
    listener->Accept();
  for (int i = 0; i < options.threads; ++i) {
    rt.threads.emplace_back([&ioc = rt.ioc] {
      NameThisThread("sw-http");
      // A handler that escapes an exception must not take the thread (and the server) down.
      for (;;) {
        try {
          ioc.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("http: io thread caught: {}; continuing", e.what());
        }
      }
    });
  }
  return server;
}

void HttpServer::Stop(std::chrono::milliseconds drain) {
  if (stopped_) return;
  stopped_ = true;
  auto deadline = Clock::now() + drain;
  core_->stopping.store(true);
  for (auto& listener : runtime_->listeners)
    listener->PostClose();
  for (auto& session : core_->LiveSessions())
    session->PostStopping();
  if (!core_->WaitDrained(deadline)) {
    spdlog::warn("http: {} connections still busy after the {} ms drain; closing them",
                 core_->LiveCount(), drain.count());
    for (auto& session : core_->LiveSessions())
      session->PostClose();
    core_->WaitDrained(Clock::now() + std::chrono::seconds(1));
  }
  // Threads still inside the handler finish it before they return.
  runtime_->ioc.stop();
  for (auto& t : runtime_->threads)
    t.join();
  runtime_->threads.clear();
  // Nothing runs now: close whatever stop() left behind directly.
  for (auto& listener : runtime_->listeners)
    listener->Close();
  for (auto& session : core_->LiveSessions())
    session->CloseNow();
}

HttpServer::~HttpServer() {
  if (runtime_) {
    Stop();
    runtime_->listeners.clear();
  }
}

HttpServerStats HttpServer::Stats() const {
  HttpServerStats s;
  s.connections_open = core_->connections_open.load();
  s.connections_total = core_->connections_total.load();
  s.connections_refused = core_->connections_refused.load();
  s.requests = core_->requests.load();
  s.handler_exceptions = core_->handler_exceptions.load();
  s.timeouts = core_->timeouts.load();
  for (size_t k = 0; k < s.responses_by_class.size(); ++k) {
    s.responses_by_class[k] = core_->responses_by_class[k].load();
  }
  return s;
}

}  // namespace swrdma::agent
