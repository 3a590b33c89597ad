#include "http/http_session.h"

#include <algorithm>
#include <exception>
#include <limits>

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "http/http_util.h"

namespace swrdma::agent::http_detail {

namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxLingerBytes = 4 * 1024 * 1024;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

bool IsHttpParseError(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

}  // namespace

std::string FormatEndpoint(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

Session::Session(tcp::socket&& socket, std::shared_ptr<Core> core, bool refused)
    : stream_(std::move(socket)), core_(std::move(core)), refused_(refused) {
  beast::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  remote_ = ec ? "unknown" : FormatEndpoint(ep);
  stream_.socket().set_option(tcp::no_delay(true), ec);
}

Session::~Session() {
  (refused_ ? core_->refused_open : core_->connections_open).fetch_sub(1);
  if (id_ != 0) core_->Unregister(id_);
}

void Session::Start() {
  id_ = core_->Register(weak_from_this());
  net::dispatch(stream_.get_executor(),
                beast::bind_front_handler(&Session::Begin, shared_from_this()));
}

void Session::PostStopping() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    if (self->phase_ == Phase::kIdle) self->Close();
  });
}

void Session::PostClose() {
  net::post(stream_.get_executor(), [self = shared_from_this()] { self->Close(); });
}

void Session::Begin() {
  if (refused_) {
    Respond(HttpResponse::JsonError(503, fmt::format("too many connections (max {}); retry later",
                                                     core_->options.max_connections)),
            11, /*head=*/false, /*close=*/true);
    return;
  }
  // The first request, idle wait included, must arrive within read_timeout of the accept.
  deadline_ = Clock::now() + core_->options.read_timeout;
  ReadNext();
}

void Session::ReadNext() {
  if (core_->stopping.load()) return Linger();
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(
      std::min<size_t>(core_->options.header_limit, std::numeric_limits<uint32_t>::max())));
  parser_->body_limit(core_->options.body_limit);
  if (buffer_.size() > 0) {  // a pipelined request is already here
    if (!first_request_) deadline_ = Clock::now() + core_->options.read_timeout;
    first_request_ = false;
    return ReadHeader();
  }
  phase_ = Phase::kIdle;
  if (buffer_.capacity() > 2 * kReadChunk) buffer_.shrink_to_fit();
  if (first_request_) {
    stream_.expires_at(deadline_);
  } else {
    stream_.expires_after(core_->options.idle_timeout);
  }
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          beast::bind_front_handler(&Session::OnIdleRead, shared_from_this()));
}

void Session::OnIdleRead(beast::error_code ec, size_t n) {
  // EOF, idle timeout, reset or server stop: there is no request to answer.
  if (ec || phase_ == Phase::kClosed) return Close();
  buffer_.commit(n);
  if (!first_request_) deadline_ = Clock::now() + core_->options.read_timeout;
  first_request_ = false;
  ReadHeader();
}

void Session::ReadHeader() {
  phase_ = Phase::kReading;
  stream_.expires_at(deadline_);
  http::async_read_header(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
}

void Session::OnHeader(beast::error_code ec, size_t) {
  if (ec) return OnReadError(ec);
  if (parser_->is_done()) return Handle();
  const auto& req = parser_->get();
  if (req.version() >= 11 && beast::iequals(req[http::field::expect], "100-continue")) {
    stream_.expires_at(deadline_);
    net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                     beast::bind_front_handler(&Session::OnContinueWritten, shared_from_this()));
    return;
  }
  ReadBody();
}

void Session::OnContinueWritten(beast::error_code ec, size_t) {
  if (ec) return OnReadError(ec);
  ReadBody();
}

void Session::ReadBody() {
  stream_.expires_at(deadline_);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&Session::OnBody, shared_from_this()));
}

void Session::OnBody(beast::error_code ec, size_t) {
  if (ec) return OnReadError(ec);
  Handle();
}

void Session::OnReadError(beast::error_code ec) {
  if (phase_ == Phase::kClosed) return;
  if (ec == beast::error::timeout) {
    core_->timeouts.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("http {}: request not received within {} ms; closing", remote_,
                  core_->options.read_timeout.count());
    return Close();
  }
  if (ec == http::error::header_limit) {
    return Respond(HttpResponse::JsonError(431, fmt::format("request header larger than {} bytes",
                                                            core_->options.header_limit)),
                   11, false, true);
  }
  if (ec == http::error::body_limit) {
    return Respond(HttpResponse::JsonError(413, fmt::format("request body larger than {} bytes",
                                                            core_->options.body_limit)),
                   11, false, true);
  }
  // EOF before or inside a request: nobody is left to answer.
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) return Close();
  if (IsHttpParseError(ec)) {
    spdlog::debug("http {}: bad request: {}", remote_, ec.message());
    return Respond(HttpResponse::JsonError(400, "malformed HTTP request: " + ec.message()), 11,
                   false, true);
  }
  Close();  // socket errors, server stop
}

void Session::Handle() {
  phase_ = Phase::kHandling;
  auto req = parser_->release();
  parser_.reset();
  HttpRequest request;
  request.method = std::string(req.method_string());
  request.target = std::string(req.target());
  request.version = static_cast<int>(req.version());
  for (const auto& field : req) {
    request.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  }
  request.body = std::move(req.body());
  request.remote = remote_;
  // The client's id when it sent a sane one (so its logs and ours line up), else a fresh one.
  auto client_id = request.Header("X-Request-Id");
  request.request_id =
      client_id && IsSaneRequestId(*client_id) ? std::string(*client_id) : core_->NextRequestId();
  core_->requests.fetch_add(1, std::memory_order_relaxed);
  const auto start = Clock::now();

  HttpResponse response;
  try {
    response = core_->handler(request);
    if (auto problem = ResponseProblem(response)) {
      spdlog::error("http {} {} {}: handler bug: {}", request.request_id, request.method,
                    request.target, *problem);
      response = HttpResponse::JsonError(500, "internal error: " + *problem);
    }
  } catch (const std::exception& e) {
    core_->handler_exceptions.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("http {} {} {}: handler threw: {}", request.request_id, request.method,
                 request.target, e.what());
    response = HttpResponse::JsonError(500, std::string("internal error: ") + e.what());
  } catch (...) {
    core_->handler_exceptions.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("http {} {} {}: handler threw a non-exception", request.request_id, request.method,
                 request.target);
    response = HttpResponse::JsonError(500, "internal error: unknown exception");
  }
  if (spdlog::should_log(spdlog::level::debug)) {  // access log
    const size_t bytes = response.shared_body ? response.shared_body->size() : response.body.size();
    spdlog::debug(
        "[{}] {} {} {} -> {} {} bytes {} us", request.request_id, remote_, request.method,
        std::string_view(request.target).substr(0, 256), response.status, bytes,
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
  }
  Respond(std::move(response), request.version, req.method() == http::verb::head, !req.keep_alive(),
          request.request_id);
}

void Session::Respond(HttpResponse response, int version, bool head, bool close,
                      std::string request_id) {
  if (request_id.empty()) request_id = core_->NextRequestId();
  response_ = std::move(response);
  message_ = {};
  message_.version(static_cast<unsigned>(version));
  message_.result(static_cast<unsigned>(response_.status));
  if (!response_.content_type.empty()) {
    message_.set(http::field::content_type, response_.content_type);
  }
  for (const auto& h : response_.headers) {
    if (beast::iequals(h.name, "content-length") || beast::iequals(h.name, "transfer-encoding")) {
      continue;  // framing is ours
    }
    if (beast::iequals(h.name, "connection")) {
      close = close || ConnectionSaysClose(h.value);
      continue;
    }
    message_.insert(h.name, h.value);
  }
  message_.set("X-Request-Id", request_id);
  const std::string& body = response_.shared_body ? *response_.shared_body : response_.body;
  int status = response_.status;
  if (status != 204 && status != 304) {
    message_.content_length(body.size());  // also right for HEAD, whose body is not sent
    if (!head) message_.body() = beast::span<const char>(body.data(), body.size());
  }
  close_after_write_ = close || core_->stopping.load();
  message_.keep_alive(!close_after_write_);
  core_->CountResponse(status);

  phase_ = Phase::kWriting;
  stream_.expires_after(core_->options.write_timeout);
  http::async_write(stream_, message_,
                    beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
}

void Session::OnWrite(beast::error_code ec, size_t) {
  if (ec) {
    if (ec == beast::error::timeout) core_->timeouts.fetch_add(1, std::memory_order_relaxed);
    return Close();
  }
  response_ = {};  // release the body now rather than with the next response
  message_ = {};
  if (close_after_write_) return Linger();
  ReadNext();
}

void Session::Linger() {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kLingering;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return Close();
  buffer_.clear();
  lingered_bytes_ = 0;
  stream_.expires_after(core_->options.linger_timeout);
  LingerRead();
}

void Session::LingerRead() {
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          beast::bind_front_handler(&Session::OnLingerRead, shared_from_this()));
}

void Session::OnLingerRead(beast::error_code ec, size_t n) {
  lingered_bytes_ += n;
  if (ec || phase_ == Phase::kClosed || lingered_bytes_ > kMaxLingerBytes) return Close();
  LingerRead();
}

void Session::Close() {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
}

}  // namespace swrdma::agent::http_detail
