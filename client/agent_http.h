// A small blocking HTTP/1.1 client for the agent's key-exchange API (Boost.Beast), with one
// keep-alive connection, a deadline on every request, and one reconnect when a kept-alive
// connection turns out to be closed.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"

namespace swrdma::client {

struct HttpUrl {
  std::string host;
  uint16_t port = 0;
  std::string base_path;  // without trailing '/', usually empty
};

// "http://host:port", "host:port", "http://[::1]:18515". kInvalidArgument otherwise.
Result<HttpUrl> ParseHttpUrl(std::string_view url, uint16_t default_port);

struct HttpReply {
  int status = 0;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string Header(std::string_view name) const;  // "" if absent
};

class AgentHttp {
 public:
  AgentHttp(HttpUrl url, std::chrono::milliseconds timeout);
  ~AgentHttp();
  AgentHttp(const AgentHttp&) = delete;
  AgentHttp& operator=(const AgentHttp&) = delete;

  // kUnavailable when the agent cannot be reached, kTimeout past the deadline; any HTTP status
  // is a successful reply (the caller interprets it).
  Result<HttpReply> Request(std::string_view method, std::string_view target,
                            std::string_view body = {}, std::string_view content_type = {},
                            std::string_view accept = {},
                            const std::vector<std::pair<std::string, std::string>>& headers = {});

  const HttpUrl& url() const { return url_; }

 private:
  struct Impl;
  HttpUrl url_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace swrdma::client
