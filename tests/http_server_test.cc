// A real HttpServer on 127.0.0.1 with an ephemeral port, spoken to over raw sockets so that the
// tests can misbehave the way real clients do. Every socket operation has a timeout.
#include "http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "http/http_util.h"

namespace swrdma::agent {
namespace {

using namespace std::chrono_literals;

constexpr auto kIoTimeout = 5s;

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// A blocking TCP client whose every send/recv gives up after kIoTimeout.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{.tv_sec = std::chrono::seconds(kIoTimeout).count(), .tv_usec = 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { Close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // One response; for a HEAD request the body is not read (Content-Length is still reported).
  std::optional<RawResponse> Read(bool head = false) {
    size_t end;
    while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    std::string head_text = pending_.substr(0, end);
    pending_.erase(0, end + 4);
    RawResponse r;
    if (head_text.size() < 12 || !head_text.starts_with("HTTP/1.")) return std::nullopt;
    r.status = std::stoi(head_text.substr(9, 3));
    size_t pos = head_text.find("\r\n");
    while (pos != std::string::npos) {
      size_t next = head_text.find("\r\n", pos + 2);
      std::string line =
          head_text.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      auto colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name)
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ')
          value.erase(0, 1);
        r.headers[name] = value;
      }
      pos = next;
    }
    if (head || r.status == 100) return r;
    size_t length = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    while (pending_.size() < length) {
      if (!Fill()) return std::nullopt;
    }
    r.body = pending_.substr(0, length);
    pending_.erase(0, length);
    return r;
  }

  // True once the server has closed (EOF or reset) within `timeout`; unread bytes are dropped.
  bool WaitClosed(std::chrono::milliseconds timeout = kIoTimeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    }
    return false;
  }

  const std::string& pending() const { return pending_; }

 private:
  bool Fill() {
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;  // EOF, reset, or kIoTimeout
    pending_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string pending_;
};

std::string Get(std::string_view target, std::string_view extra_headers = "") {
  return std::string("GET ") + std::string(target) + " HTTP/1.1\r\nHost: t\r\n" +
         std::string(extra_headers) + "\r\n";
}

std::string Post(std::string_view target, std::string_view body) {
  return std::string("POST ") + std::string(target) +
         " HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

// Echoes the request; "/throw" throws, "/slow" waits on the fixture's gate.
class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options = {}) {
    options.listen = {"127.0.0.1:0"};
    auto server = HttpServer::Start(options, [this](const HttpRequest& r) { return Handle(r); });
    ASSERT_TRUE(server.has_value()) << server.error().ToString();
    server_ = std::move(*server);
    ASSERT_EQ(server_->ports().size(), 1u);
    port_ = server_->ports()[0];
    ASSERT_NE(port_, 0);
  }

  HttpResponse Handle(const HttpRequest& r) {
    if (r.Path() == "/throw") throw std::runtime_error("boom \"quoted\"");
    if (r.Path() == "/slow") {
      slow_entered_.set_value();
      std::this_thread::sleep_for(500ms);
      return HttpResponse::Text(200, "done");
    }
    if (r.Path() == "/bad-header") {
      HttpResponse resp = HttpResponse::Text(200, "x");
      resp.headers.push_back({"X-Injected", "a\r\nSet-Cookie: evil"});
      return resp;
    }
    if (r.Path() == "/shared") {
      HttpResponse resp;
      resp.shared_body = std::make_shared<const std::string>(100000, 'z');
      return resp;
    }
    HttpResponse resp = HttpResponse::Text(
        200, r.method + " " + r.target + " q=" + std::string(r.Query()) + " body=" + r.body);
    resp.headers.push_back({"X-Echo", std::string(r.Header("x-echo").value_or(""))});
    resp.headers.push_back({"X-Seen-Request-Id", r.request_id});
    return resp;
  }

  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
  std::promise<void> slow_entered_;
};

TEST_F(HttpServerTest, GetAndPostEcho) {
  StartServer();
  RawClient c(port_);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(Get("/hello?a=1", "X-Echo: hi\r\n")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /hello?a=1 q=a=1 body=");
  EXPECT_EQ(r->Header("x-echo"), "hi");
  EXPECT_EQ(r->Header("content-type"), "text/plain; charset=utf-8");
  std::string id1 = r->Header("x-request-id");
  EXPECT_FALSE(id1.empty());
  EXPECT_EQ(r->Header("x-seen-request-id"), id1);  // the handler saw the id it was answered with

  ASSERT_TRUE(c.Send(Post("/echo", "hello world")));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /echo q= body=hello world");
  EXPECT_NE(r->Header("x-request-id"), id1);
  EXPECT_EQ(server_->Stats().requests, 2u);
  EXPECT_EQ(server_->Stats().responses_by_class[2], 2u);
}

TEST_F(HttpServerTest, KeepAliveAndPipelining) {
  StartServer();
  RawClient c(port_);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c.Send(Get("/n" + std::to_string(i))));
    auto r = c.Read();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "GET /n" + std::to_string(i) + " q= body=");
    EXPECT_NE(r->Header("connection"), "close");
  }
  ASSERT_TRUE(c.Send(Get("/p1") + Post("/p2", "abc") + Get("/p3", "Connection: close\r\n")));
  auto r1 = c.Read(), r2 = c.Read(), r3 = c.Read();
  ASSERT_TRUE(r1 && r2 && r3);
  EXPECT_EQ(r1->body, "GET /p1 q= body=");
  EXPECT_EQ(r2->body, "POST /p2 q= body=abc");
  EXPECT_EQ(r3->body, "GET /p3 q= body=");
  EXPECT_EQ(r3->Header("connection"), "close");
  EXPECT_TRUE(c.WaitClosed());
  EXPECT_EQ(server_->Stats().connections_total, 1u);
}

TEST_F(HttpServerTest, HeadSendsLengthWithoutBody) {
  StartServer();
  RawClient c(port_);
  ASSERT_TRUE(c.Send("HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = c.Read(/*head=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("content-length"), std::to_string(std::string("HEAD /x q= body=").size()));
  // Had a body been sent, it would sit in front of the next response and break its parse.
  ASSERT_TRUE(c.Send(Get("/y")));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /y q= body=");
}

TEST_F(HttpServerTest, SharedBodyIsSent) {
  StartServer();
  RawClient c(port_);
  ASSERT_TRUE(c.Send(Get("/shared")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, std::string(100000, 'z'));
  EXPECT_EQ(r->Header("content-type"), "application/json");
}

TEST_F(HttpServerTest, OversizedHeaderGets431) {
  StartServer();
  RawClient c(port_);
  ASSERT_TRUE(c.Send(Get("/", "X-Big: " + std::string(17 * 1024, 'a') + "\r\n")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(r->body.find("{\"error\":"), 0u) << r->body;
  EXPECT_FALSE(r->Header("x-request-id").empty());
  EXPECT_TRUE(c.WaitClosed());
  EXPECT_EQ(server_->Stats().requests, 0u);
}

TEST_F(HttpServerTest, OversizedBodyGets413BeforeItIsSent) {
  StartServer();  // body_limit 1 MiB
  RawClient c(port_);
  // Announce 2 MiB but send only 64 KiB: the answer must not wait for the rest.
  ASSERT_TRUE(c.Send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\n\r\n" +
                     std::string(64 * 1024, 'b')));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("\"error\""), std::string::npos);
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_TRUE(c.WaitClosed());
  EXPECT_EQ(server_->Stats().requests, 0u);
}

TEST_F(HttpServerTest, OversizedChunkedBodyGets413) {
  HttpServerOptions o;
  o.body_limit = 1000;
  StartServer(o);
  RawClient c(port_);
  ASSERT_TRUE(c.Send("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                     std::string("7d0\r\n") + std::string(2000, 'c') + "\r\n0\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(HttpServerTest, ExpectContinue) {
  StartServer();
  RawClient c(port_);
  ASSERT_TRUE(
      c.Send("POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 100);
  ASSERT_TRUE(c.Send("12345"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /e q= body=12345");
}

TEST_F(HttpServerTest, GarbageGets400) {
  StartServer();
  RawClient c(port_);
  ASSERT_TRUE(c.Send(std::string("\x01\x02\xff garbage \x7f\r\n\r\n", 17)));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->body.find("{\"error\":\"malformed HTTP request"), 0u) << r->body;
  EXPECT_TRUE(c.WaitClosed());
  EXPECT_EQ(server_->Stats().responses_by_class[4], 1u);
}

TEST_F(HttpServerTest, SlowDripHeadersAreCutOff) {
  HttpServerOptions o;
  o.read_timeout = 1s;
  StartServer(o);
  RawClient c(port_);
  ASSERT_TRUE(c.Send("GET / HTTP/1.1\r\n"));
  bool closed = false;
  // One header line every 200 ms would go on for 20 s; the server must cut it off long before.
  for (int i = 0; i < 100 && !closed; ++i) {
    if (!c.Send("X-Drip: " + std::to_string(i) + "\r\n")) {
      closed = true;
      break;
    }
    closed = c.WaitClosed(200ms);
  }
  EXPECT_TRUE(closed);
  EXPECT_EQ(server_->Stats().requests, 0u);
  // The socket is closed by the timer before the session counts the timeout: wait for it.
  for (int i = 0; i < 50 && server_->Stats().timeouts == 0; ++i)
    std::this_thread::sleep_for(100ms);
  EXPECT_EQ(server_->Stats().timeouts, 1u);
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionIsClosed) {
  HttpServerOptions o;
  o.idle_timeout = 500ms;
  StartServer(o);
  RawClient c(port_);
  ASSERT_TRUE(c.Send(Get("/")));
  ASSERT_TRUE(c.Read());
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(HttpServerTest, ConnectionCapAnswers503) {
  HttpServerOptions o;
  o.max_connections = 4;
  StartServer(o);
  std::vector<std::unique_ptr<RawClient>> served;
  for (int i = 0; i < 4; ++i) {  // served one after the other: all four are admitted
    served.push_back(std::make_unique<RawClient>(port_));
    ASSERT_TRUE(served.back()->Send(Get("/")));
    auto r = served.back()->Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  for (int i = 0; i < 2; ++i) {
    RawClient extra(port_);
    ASSERT_TRUE(extra.connected());
    extra.Send(Get("/"));  // may fail if the server already closed; the 503 is still readable
    auto r = extra.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    EXPECT_NE(r->body.find("too many connections"), std::string::npos);
    EXPECT_FALSE(r->Header("x-request-id").empty());
    EXPECT_TRUE(extra.WaitClosed());
  }
  EXPECT_EQ(server_->Stats().connections_refused, 2u);

  // A freed slot is usable again.
  served.pop_back();
  for (int i = 0; i < 50 && server_->Stats().connections_open > 3; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(server_->Stats().connections_open, 3u);
  RawClient again(port_);
  ASSERT_TRUE(again.Send(Get("/")));
  auto r = again.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpServerTest, HandlerExceptionGives500AndServerGoesOn) {
  StartServer();
  RawClient c(port_);
  ASSERT_TRUE(c.Send(Get("/throw")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->Header("content-type"), "application/json");
  EXPECT_EQ(r->body, R"({"error":"internal error: boom \"quoted\""})");
  ASSERT_TRUE(c.Send(Get("/after")));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  RawClient other(port_);
  ASSERT_TRUE(other.Send(Get("/other")));
  r = other.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(server_->Stats().handler_exceptions, 1u);
  EXPECT_EQ(server_->Stats().responses_by_class[5], 1u);
}

TEST_F(HttpServerTest, HeaderInjectionFromHandlerGives500) {
  StartServer();
  RawClient c(port_);
  ASSERT_TRUE(c.Send(Get("/bad-header")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->Header("set-cookie"), "");
}

TEST_F(HttpServerTest, StopDrainsRunningRequest) {
  HttpServerOptions o;
  o.linger_timeout = 200ms;  // this client reads only after Stop returns
  StartServer(o);
  RawClient idle(port_);  // connected, no request: closed at once by Stop
  RawClient c(port_);
  ASSERT_TRUE(c.Send(Get("/slow")));
  ASSERT_EQ(slow_entered_.get_future().wait_for(kIoTimeout), std::future_status::ready);
  server_->Stop(5s);
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "done");
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_TRUE(c.WaitClosed());
  EXPECT_TRUE(idle.WaitClosed());
  RawClient late(port_);
  EXPECT_FALSE(late.connected());
  server_->Stop();  // idempotent
}

TEST_F(HttpServerTest, BindFailureNamesTheAddress) {
  StartServer();
  HttpServerOptions o;
  std::string spec = "127.0.0.1:" + std::to_string(port_);
  o.listen = {spec};
  auto second = HttpServer::Start(o, [](const HttpRequest&) { return HttpResponse{}; });
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), Code::kUnavailable);
  EXPECT_NE(second.error().message().find("listen " + spec + ": Address already in use"),
            std::string::npos)
      << second.error().message();
}

TEST(HttpServerIpv6, ListensOnLoopback) {
  HttpServerOptions o;
  o.listen = {"[::1]:0", "127.0.0.1:0"};
  auto server = HttpServer::Start(o, [](const HttpRequest&) { return HttpResponse{}; });
  if (!server && server.error().message().find("[::1]") != std::string::npos) {
    GTEST_SKIP() << "no IPv6 loopback here: " << server.error().ToString();
  }
  ASSERT_TRUE(server.has_value()) << server.error().ToString();
  ASSERT_EQ((*server)->ports().size(), 2u);
  EXPECT_EQ((*server)->endpoints()[0], "[::1]:" + std::to_string((*server)->ports()[0]));
}

TEST(HttpUtil, ParseListenAddress) {
  auto a = ParseListenAddress("0.0.0.0:18515");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->ip, "0.0.0.0");
  EXPECT_EQ(a->port, 18515);
  a = ParseListenAddress("[::1]:0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->ip, "::1");
  EXPECT_EQ(a->port, 0);
  EXPECT_EQ(ParseListenAddress("localhost:80")->ip, "127.0.0.1");
  EXPECT_EQ(ParseListenAddress(":80")->ip, "0.0.0.0");
  for (const char* bad :
       {"18515", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:8x", "::1:80", "[::1]80", "[::1", "[]:80"}) {
    auto r = ParseListenAddress(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
    EXPECT_NE(r.error().message().find(bad), std::string::npos) << r.error().message();
  }
}

TEST(HttpUtil, JsonAndHelpers) {
  EXPECT_EQ(JsonQuote("a\"b\\c\n\x01"), R"("a\"b\\c\n\u0001")");
  EXPECT_EQ(HttpResponse::JsonError(404, "no \"x\"").body, R"({"error":"no \"x\""})");
  EXPECT_TRUE(ConnectionSaysClose("keep-alive, Close"));
  EXPECT_FALSE(ConnectionSaysClose("keep-alive"));
  HttpResponse bad;
  bad.status = 99;
  EXPECT_TRUE(ResponseProblem(bad));
  bad.status = 200;
  bad.headers.push_back({"Bad Name", "v"});
  EXPECT_TRUE(ResponseProblem(bad));
  EXPECT_FALSE(ResponseProblem(HttpResponse{}));
  HttpRequest req;
  req.target = "/v1/x?y=1";
  req.headers.push_back({"Content-Type", "a/b"});
  EXPECT_EQ(req.Path(), "/v1/x");
  EXPECT_EQ(req.Query(), "y=1");
  EXPECT_EQ(req.Header("content-type"), "a/b");
  EXPECT_FALSE(req.Header("accept"));
}

TEST(HttpServerStart, RejectsBadOptions) {
  HttpServerOptions o;
  o.threads = 0;
  EXPECT_FALSE(HttpServer::Start(o, [](const HttpRequest&) { return HttpResponse{}; }));
  o.threads = 1;
  o.listen = {"nonsense"};
  auto r = HttpServer::Start(o, [](const HttpRequest&) { return HttpResponse{}; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace swrdma::agent
