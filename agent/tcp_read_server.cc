// TcpReadServer: an Asio acceptor and one Connection per client, each on its own strand, with
// one timer that enforces whichever deadline applies to what the connection is doing.
#include "agent/tcp_read_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include "agent/checked_read.h"
#include "http/http_util.h"
#include "protocol/read_messages.h"
#include "protocol/thread_name.h"

namespace swrdma::agent {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

namespace {

// The first bytes of a request are read into a buffer this large; it grows with what arrives
// (never ahead of it), so a peer announcing 4 MiB and sending 10 bytes costs 64 KiB.
constexpr size_t kInitialRequestBuffer = size_t{64} << 10;

prometheus::Counter& AddCounter(prometheus::Registry& r, const std::string& name,
                                const std::string& help, const prometheus::Labels& labels = {}) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add(labels);
}

}  // namespace

struct TcpReadServer::Core {
  Core(const TcpReadServerOptions& o, const VolumeSet& v, const ReadAuthorizer* a)
      : options(o),
        volumes(v),
        auth(a),
        registry(o.registry ? o.registry : std::make_shared<prometheus::Registry>()),
        connections_open(prometheus::BuildGauge()
                             .Name("swrdma_tcp_read_connections_open")
                             .Help("Checked-read TCP connections being served now")
                             .Register(*registry)
                             .Add({})),
        connections_total(AddCounter(*registry, "swrdma_tcp_read_connections_total",
                                     "Checked-read TCP connections accepted and served")),
        connections_refused(AddCounter(*registry, "swrdma_tcp_read_connections_refused_total",
                                       "Checked-read TCP connections closed at once: the "
                                       "connection limit was reached")),
        request_family(prometheus::BuildCounter()
                           .Name("swrdma_tcp_read_requests_total")
                           .Help("Checked-read requests over TCP by outcome: served, malformed "
                                 "(the frame was refused and its connection closed)")
                           .Register(*registry)),
        requests(request_family.Add({{"result", "served"}})),
        malformed(request_family.Add({{"result", "malformed"}})),
        timeouts(AddCounter(*registry, "swrdma_tcp_read_timeouts_total",
                            "Checked-read TCP connections closed for being idle, sending a "
                            "request too slowly or not reading their reply")),
        fid_family(prometheus::BuildCounter()
                       .Name("swrdma_tcp_read_fids_total")
                       .Help("Fids of checked reads over TCP by answer: sent (the record), "
                             "refused (another status), denied (refused for the token; also "
                             "counted as refused), send_failed, pushed (of sent, written to "
                             "the client's landing buffer over verbs)")
                       .Register(*registry)),
        replies_ok(fid_family.Add({{"answer", "sent"}})),
        replies_refused(fid_family.Add({{"answer", "refused"}})),
        denied(fid_family.Add({{"answer", "denied"}})),
        send_failures(fid_family.Add({{"answer", "send_failed"}})),
        pushed(fid_family.Add({{"answer", "pushed"}})),
        push_failures(AddCounter(*registry, "swrdma_tcp_read_push_failures_total",
                                 "Checked-read requests whose push over verbs failed (their "
                                 "records were sent inline instead)")),
        bytes(AddCounter(*registry, "swrdma_tcp_read_bytes_total",
                         "Needle record bytes sent to checked readers over TCP")),
        io(std::make_unique<net::io_context>()),
        acceptor(std::in_place, *io),
        retry(std::in_place, *io) {}

  // Pending handlers hold connections, and connections use this core: the io_context (and the
  // handlers it still holds) goes first, while everything else is still here.
  ~Core() {
    retry.reset();
    acceptor.reset();
    io.reset();
  }

  TcpReadServerOptions options;
  const VolumeSet& volumes;
  const ReadAuthorizer* auth;
  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Gauge& connections_open;
  prometheus::Counter& connections_total;
  prometheus::Counter& connections_refused;
  prometheus::Family<prometheus::Counter>& request_family;
  prometheus::Counter& requests;
  prometheus::Counter& malformed;
  prometheus::Counter& timeouts;
  prometheus::Family<prometheus::Counter>& fid_family;
  prometheus::Counter& replies_ok;
  prometheus::Counter& replies_refused;
  prometheus::Counter& denied;
  prometheus::Counter& send_failures;
  prometheus::Counter& pushed;
  prometheus::Counter& push_failures;
  prometheus::Counter& bytes;

  std::unique_ptr<net::io_context> io;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer>
      retry;  // after an accept error (EMFILE): try again a little later
  std::vector<std::thread> threads;
  std::atomic<size_t> open{0};
  std::mutex mu;                                                 // guards `connections`
  std::unordered_map<void*, std::function<void()>> connections;  // id -> close it (posted)
  std::atomic<bool> stopping{false};

  void Accept();
  void OnAccept(error_code ec, tcp::socket socket);
};

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(TcpReadServer::Core& core, tcp::socket socket)
      : core_(core), socket_(std::move(socket)), timer_(socket_.get_executor()) {}

  void Start() {
    auto self = shared_from_this();
    {
      std::lock_guard lock(core_.mu);
      core_.connections[this] = [weak = weak_from_this()] {
        if (auto c = weak.lock()) {
          net::post(c->socket_.get_executor(), [c] { c->Close(); });
        }
      };
    }
    error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);  // one reply is often one small write
    ReadLength();
  }

  ~Connection() {
    {
      std::lock_guard lock(core_.mu);
      core_.connections.erase(this);
    }
    core_.open.fetch_sub(1, std::memory_order_relaxed);
    core_.connections_open.Decrement();
  }

 private:
  enum class Phase { kIdle, kRequest, kPush, kReply, kClosed };

  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    timer_.cancel();
  }

  // The timer fires at `deadline_`; while replying, the deadline moves with write progress.
  void Arm(Clock::time_point deadline) {
    deadline_ = deadline;
    timer_.expires_at(deadline);
    timer_.async_wait([self = shared_from_this()](error_code ec) { self->OnTimer(ec); });
  }
  void OnTimer(error_code ec) {
    if (ec || phase_ == Phase::kClosed) return;  // re-armed or cancelled
    if (Clock::now() < deadline_) {
      Arm(deadline_);  // moved by progress since this wait was set
      return;
    }
    core_.timeouts.Increment();
    Close();
  }

  void ReadLength() {
    phase_ = Phase::kIdle;
    Arm(Clock::now() + core_.options.idle_timeout);
    net::async_read(socket_, net::buffer(length_),
                    [self = shared_from_this()](error_code ec, size_t) { self->OnLength(ec); });
  }

  void OnLength(error_code ec) {
    if (ec || phase_ == Phase::kClosed) return Close();
    const uint32_t n = static_cast<uint32_t>(length_[0]) | uint32_t{length_[1]} << 8 |
                       uint32_t{length_[2]} << 16 | uint32_t{length_[3]} << 24;
    if (n < kReadRequestFixedBytes || n > kMaxReadRequestBytes) {
      core_.malformed.Increment();
      spdlog::debug("checked read over tcp: a frame of {} bytes; closing", n);
      return Close();
    }
    phase_ = Phase::kRequest;
    Arm(Clock::now() + core_.options.read_timeout);
    want_ = n;
    have_ = 0;
    request_.resize(std::min<size_t>(n, kInitialRequestBuffer));
    ReadBody();
  }

  void ReadBody() {
    socket_.async_read_some(
        net::buffer(request_.data() + have_, request_.size() - have_),
        [self = shared_from_this()](error_code ec, size_t n) { self->OnBody(ec, n); });
  }

  void OnBody(error_code ec, size_t n) {
    if (ec || phase_ == Phase::kClosed) return Close();
    have_ += n;
    if (have_ < want_) {
      if (have_ == request_.size()) request_.resize(std::min(want_, request_.size() * 2));
      return ReadBody();
    }
    auto request = DecodeReadRequest({request_.data(), want_});
    // A request of many KiB is not kept around while its reply is written.
    if (request_.capacity() > kInitialRequestBuffer) std::vector<uint8_t>().swap(request_);
    if (!request) {
      core_.malformed.Increment();
      spdlog::debug("checked read over tcp: {}; closing", request.error().ToString());
      return Close();
    }
    core_.requests.Increment();
    Reply(*request);
  }

  void Reply(const ReadRequest& request) {
    const size_t n = request.entries.size();
    records_.clear();
    records_.reserve(n);
    headers_.resize(n);
    buffers_.clear();
    buffers_.reserve(2 * n);
    const auto map = core_.volumes.snapshot();  // one snapshot for the batch
    for (uint32_t i = 0; i < n; ++i)
      records_.push_back(
          CheckRead(core_.volumes, *map, core_.auth, request.entries[i], request.ec_pieces));
    request_id_ = request.request_id;
    PushRecords(request);  // SendReply, now or once the push ended
  }

  void SendReply(const std::vector<char>& landed) {
    const uint32_t n = static_cast<uint32_t>(records_.size());
    uint64_t sent = 0, refused = 0, denied = 0, bytes = 0;
    for (uint32_t i = 0; i < n; ++i) {
      const CheckedRecord& c = records_[i];
      ReadReplyHeader header = c.Header(request_id_, i);
      header.landed = landed[i] != 0;
      EncodeReadReplyHeader(header, headers_[i]);
      if (c.status == ReadStatus::kOk) {
        ++sent;
        bytes += c.record.size();
      } else {
        ++refused;
        denied += c.status == ReadStatus::kDenied;
      }
      buffers_.push_back(net::buffer(headers_[i]));
      // Straight from the mapping (or the refusal's reason): the records keep their exports,
      // and so the bytes, alive until the write is done.
      const std::span<const uint8_t> data = c.data();
      if (!data.empty() && !header.landed) {
        buffers_.push_back(net::buffer(data.data(), data.size()));
      }
    }
    replied_ = sent;
    core_.replies_refused.Increment(static_cast<double>(refused));
    core_.denied.Increment(static_cast<double>(denied));
    core_.bytes.Increment(static_cast<double>(bytes));
    phase_ = Phase::kReply;
    Arm(Clock::now() + core_.options.write_timeout);
    auto self = shared_from_this();
    net::async_write(
        socket_, buffers_,
        [this, self](const error_code& ec, size_t) -> size_t {
          // Called after every partial write: progress moves the slow-reader deadline.
          deadline_ = Clock::now() + core_.options.write_timeout;
          return ec ? 0 : net::transfer_all()(ec, 0);
        },
        [self](error_code ec, size_t) { self->OnWritten(ec); });
  }

  // Push: writes the kOk records that are registered with the pusher's device into the
  // request's landing buffer, in request order at the offsets NextLandingOffset gives, as many
  // as fit, then replies. Which entries landed: none when the request offered no landing, there
  // is no pusher, or the push failed (then everything goes inline: the offer binds us to
  // nothing). The connection holds no thread while the writes are in flight; records_ (the
  // writes' sources) stay until the reply is written.
  void PushRecords(const ReadRequest& request) {
    std::vector<char> landed(records_.size(), 0);
    if (!request.push || core_.options.pusher == nullptr) return SendReply(landed);
    std::vector<PushWrite> writes;
    uint64_t end = 0;
    for (size_t i = 0; i < records_.size(); ++i) {
      const CheckedRecord& c = records_[i];
      // EC records are assembled in agent memory (no registration): inline.
      if (c.status != ReadStatus::kOk || c.assembled || !c.source) continue;
      const uint64_t offset = NextLandingOffset(end);
      if (offset + c.record.size() > request.push->length) break;  // the rest go inline
      auto w = core_.options.pusher->Source(*c.source, c.record);
      if (!w) continue;
      w->offset = offset;
      writes.push_back(std::move(*w));
      end = offset + c.record.size();
      landed[i] = 1;
    }
    if (writes.empty()) return SendReply(landed);
    phase_ = Phase::kPush;
    Arm(Clock::now() + core_.options.write_timeout);
    const size_t count = writes.size();
    auto self = shared_from_this();
    core_.options.pusher->Push(
        *request.push, std::move(writes),
        [self, count, landed = std::move(landed)](Status s) mutable {
          net::post(self->socket_.get_executor(),
                    [self, count, s = std::move(s), landed = std::move(landed)]() mutable {
                      self->OnPushed(s, count, landed);
                    });
        });
  }

  void OnPushed(const Status& s, size_t count, std::vector<char>& landed) {
    if (phase_ == Phase::kClosed) {  // timed out or stopped meanwhile: nothing to answer
      records_.clear();
      return;
    }
    if (!s.ok()) {
      core_.push_failures.Increment();
      spdlog::debug("checked read over tcp: push of {} records failed: {}; sending them inline",
                    count, s.ToString());
      std::fill(landed.begin(), landed.end(), 0);
    } else {
      core_.pushed.Increment(static_cast<double>(count));
    }
    SendReply(landed);
  }

  void OnWritten(error_code ec) {
    records_.clear();  // releases the exports
    if (ec) {
      if (phase_ != Phase::kClosed) {
        core_.send_failures.Increment(static_cast<double>(replied_));
        if (ec == boost::system::errc::bad_address) {
          spdlog::warn(
              "checked read over tcp: a record's mapping faulted (file truncated?); "
              "closing the connection, the next scan re-exports the volume");
        }
      }
      return Close();
    }
    core_.replies_ok.Increment(static_cast<double>(replied_));
    if (phase_ == Phase::kClosed) return;
    ReadLength();
  }

  TcpReadServer::Core& core_;
  tcp::socket socket_;
  net::steady_timer timer_;
  Phase phase_ = Phase::kIdle;
  Clock::time_point deadline_{};
  std::array<uint8_t, 4> length_{};
  std::vector<uint8_t> request_;
  size_t want_ = 0, have_ = 0;
  std::vector<CheckedRecord> records_;
  std::vector<std::array<uint8_t, kReadReplyHeaderBytes>> headers_;
  std::vector<net::const_buffer> buffers_;
  uint64_t replied_ = 0;
  uint64_t request_id_ = 0;  // of the request being answered
};

}  // namespace

void TcpReadServer::Core::Accept() {
  acceptor->async_accept(net::make_strand(*io), [this](error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void TcpReadServer::Core::OnAccept(error_code ec, tcp::socket socket) {
  if (stopping.load() || !acceptor->is_open()) return;
  if (ec) {
    // Out of descriptors or memory: say so and try again shortly rather than spin.
    spdlog::warn("checked reads over tcp: accept failed: {}; retrying in 100 ms", ec.message());
    retry->expires_after(std::chrono::milliseconds(100));
    retry->async_wait([this](error_code e) {
      if (!e && !stopping.load()) Accept();
    });
    return;
  }
  if (open.load(std::memory_order_relaxed) >= options.max_connections) {
    connections_refused.Increment();
    error_code ignored;
    socket.close(ignored);
  } else {
    open.fetch_add(1, std::memory_order_relaxed);
    connections_open.Increment();
    connections_total.Increment();
    std::make_shared<Connection>(*this, std::move(socket))->Start();
  }
  Accept();
}

Result<std::unique_ptr<TcpReadServer>> TcpReadServer::Start(const TcpReadServerOptions& options,
                                                            const VolumeSet& volumes,
                                                            const ReadAuthorizer* auth) {
  int fd = options.listen_fd;
  if (fd < 0) {
    SWRDMA_ASSIGN_OR_RETURN(fd, OpenListenSocket(options.listen));
  }
  std::unique_ptr<TcpReadServer> server(new TcpReadServer());
  server->core_ = std::make_shared<Core>(options, volumes, auth);
  Core& core = *server->core_;
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  const auto protocol = ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4();
  error_code ec;
  core.acceptor->assign(protocol, fd, ec);
  if (ec) {
    ::close(fd);
    return Error(Code::kInternal,
                 fmt::format("checked reads over tcp on {}: {}", options.listen, ec.message()));
  }
  server->port_ = core.acceptor->local_endpoint(ec).port();
  core.Accept();
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    core.threads.emplace_back([&core] {
      NameThisThread("sw-tcp-read");
      try {
        core.io->run();
      } catch (const std::exception& e) {
        spdlog::critical("checked reads over tcp: io thread stopped: {}", e.what());
      }
    });
  }
  return server;
}

void TcpReadServer::Stop() {
  if (stopped_ || !core_) return;
  stopped_ = true;
  Core& core = *core_;
  core.stopping.store(true);
  net::post(*core.io, [&core] {
    error_code ignored;
    core.acceptor->close(ignored);
    core.retry->cancel();
  });
  std::vector<std::function<void()>> closers;
  {
    std::lock_guard lock(core.mu);
    for (auto& [id, close] : core.connections)
      closers.push_back(close);
  }
  for (auto& close : closers)
    close();
  // A push in flight holds its connection until its `done` runs on our threads: ended now, so
  // that none outlives them.
  if (core.options.pusher != nullptr) core.options.pusher->StopPushes(std::chrono::seconds(10));
  // Closed sockets finish their operations at once; the threads return when nothing is left.
  // A connection accepted just now closes on the next Stop step: io.stop() after a grace.
  const auto until = Clock::now() + std::chrono::seconds(2);
  while (core.open.load() > 0 && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  core.io->stop();
  for (auto& t : core.threads)
    t.join();
  core.threads.clear();
}

TcpReadServer::~TcpReadServer() {
  Stop();
}

TcpReadServerStats TcpReadServer::stats() const {
  const Core& c = *core_;
  auto v = [](const prometheus::Counter& x) { return static_cast<uint64_t>(x.Value()); };
  TcpReadServerStats s;
  s.connections_open = c.open.load(std::memory_order_relaxed);
  s.connections_total = v(c.connections_total);
  s.connections_refused = v(c.connections_refused);
  s.requests = v(c.requests);
  s.malformed = v(c.malformed);
  s.timeouts = v(c.timeouts);
  s.replies_ok = v(c.replies_ok);
  s.replies_refused = v(c.replies_refused);
  s.denied = v(c.denied);
  s.bytes = v(c.bytes);
  s.send_failures = v(c.send_failures);
  s.pushed = v(c.pushed);
  s.push_failures = v(c.push_failures);
  return s;
}

uint16_t BoundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

Result<std::optional<std::string>> ReadListenAddress(const std::optional<std::string>& read_port,
                                                     const std::string& first_http) {
  if (read_port) {
    if (*read_port == "off" || *read_port == "0") return std::optional<std::string>();
    SWRDMA_ASSIGN_OR_RETURN(ListenAddress a, ParseListenAddress(*read_port));
    (void)a;
    return std::optional<std::string>(*read_port);
  }
  SWRDMA_ASSIGN_OR_RETURN(ListenAddress a, ParseListenAddress(first_http));
  const uint16_t port = a.port == 0 ? 0 : static_cast<uint16_t>(a.port + 1);
  const std::string host = a.ip.find(':') != std::string::npos ? "[" + a.ip + "]" : a.ip;
  return std::optional<std::string>(fmt::format("{}:{}", host, port));
}

}  // namespace swrdma::agent
