// The parts of the HTTP server that touch no socket: listen-address parsing, bind error text,
// JSON error bodies and checks of what a handler returned. Split out of http_server.cc to keep
// Beast out of them and to test them directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/http_server.h"
#include "protocol/status.h"

namespace swrdma::agent {

struct ListenAddress {
  std::string ip;  // numeric, without brackets: "0.0.0.0", "::1"
  uint16_t port = 0;
};

// "HOST:PORT" with HOST an IPv4 address, a bracketed IPv6 address ("[::1]:80"), "localhost"
// (127.0.0.1) or empty / "*" (0.0.0.0).
Result<ListenAddress> ParseListenAddress(std::string_view spec);

// A listening TCP socket for `spec` (SO_REUSEADDR, close-on-exec), for a process that hands it to
// the HTTP server of a child (HttpServerOptions::listen_fds) so the port survives restarts.
Result<int> OpenListenSocket(std::string_view spec);

// "listen 0.0.0.0:18515: Address already in use; is another agent running? ..." with a hint
// for the common errno values.
Status ListenError(std::string_view spec, int err, std::string_view err_text);

// `s` as a JSON string literal, quotes included.
std::string JsonQuote(std::string_view s);

// Why a handler's response cannot be sent as is (bad status, header injection), or nullopt.
std::optional<std::string> ResponseProblem(const HttpResponse& response);

// True for an X-Request-Id a client may choose: 1 to 64 characters of [A-Za-z0-9._:-] (safe in
// logs and in the echoed header).
bool IsSaneRequestId(std::string_view id);

// True if a Connection header value contains the "close" token.
bool ConnectionSaysClose(std::string_view value);

}  // namespace swrdma::agent
