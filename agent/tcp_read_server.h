// Checked reads (protocol/read_messages.h) over plain TCP: the data path for clients on another
// host. UCX's tcp transport cannot face a hostile peer whatever features the context asks for
// (UCT tcp serves a PUT_REQ frame by writing wherever it names, UCX 1.13 src/uct/tcp), so network
// peers never talk UCX to the agent: they talk this, and UCX stays for shared memory.
//
// Push: a request may offer a landing buffer on the client's verbs connection (its nonce); with
// a pusher (the verbs exporter in push mode) every kOk record registered on that device that
// fits is RDMA-written there, and its reply header says so and carries no data.
//
// Framing, on one TCP connection per client:
//   client -> agent: u32 little-endian length | that many bytes: a read request exactly as the
//                    active-message path encodes it (EncodeReadRequest)
//   agent -> client: per entry, in request order: reply header (kReadReplyHeaderBytes,
//                    EncodeReadReplyHeader) | header.length bytes: the record or the reason
// The record goes out with one gather write straight from the exported mapping (no staging
// copy). If the file behind the mapping was truncated, the kernel's copy fails with EFAULT (a
// fault in kernel mode raises no SIGBUS): that connection is closed, the agent goes on.
//
// Each fid is decided by CheckRead (agent/checked_read.h), the same code the UCX path uses.
// One request per connection at a time: the next is read only after the previous reply has been
// written, so what a peer costs is bounded by one request (at most kMaxReadRequestBytes, and
// only as much as it has actually sent) plus the references of one reply. Limits: connections
// at once, idle time before a request, time for a whole request (slowloris), time without write
// progress (a peer that stops reading). A malformed frame closes its connection; nothing a peer
// sends reaches the rest of the process.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "agent/read_auth.h"
#include "agent/record_pusher.h"
#include "agent/volume_set.h"
#include "protocol/status.h"

namespace prometheus {
class Registry;
}

namespace swrdma::agent {

inline constexpr uint16_t kDefaultReadPort = 18516;

struct TcpReadServerOptions {
  std::string listen = "127.0.0.1:0";  // "HOST:PORT" (http/http_util.h ParseListenAddress)
  // An already listening socket for `listen` (OpenListenSocket), owned by the server from Start
  // on (closed by it also when Start fails); -1: Start binds `listen` itself.
  int listen_fd = -1;
  int threads = 2;
  size_t max_connections = 1024;  // beyond this a new connection is closed at once (counted)
  // A connection waiting for its next request is closed after this.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  // A request must arrive whole within this of its first byte.
  std::chrono::milliseconds read_timeout = std::chrono::seconds(30);
  // Writing a reply may make no progress for this long (the peer stopped reading).
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  // Where the swrdma_tcp_read_* metrics go (the agent's /metrics); null: a private registry.
  std::shared_ptr<prometheus::Registry> registry;
  // Push over verbs (agent/record_pusher.h): requests offering a landing buffer get their
  // registered records written there. Null: every record goes inline, landing or not. The
  // connection's reply waits for its writes without holding a thread (Push is asynchronous).
  RecordPusher* pusher = nullptr;
};

struct TcpReadServerStats {
  uint64_t connections_open = 0;
  uint64_t connections_total = 0;    // accepted and served
  uint64_t connections_refused = 0;  // closed at once: max_connections reached
  uint64_t requests = 0;             // well-formed requests
  uint64_t malformed = 0;            // frames refused (bad length or encoding): connection closed
  uint64_t timeouts = 0;             // connections closed for idle, slow request or slow reader
  uint64_t replies_ok = 0;           // records sent
  uint64_t replies_refused = 0;      // fids answered with another status
  uint64_t denied = 0;               // of those, refused for their token
  uint64_t bytes = 0;                // record bytes sent (inline or pushed)
  uint64_t pushed = 0;               // of replies_ok, records written to a landing buffer
  uint64_t push_failures = 0;        // requests whose push failed (their records went inline)
  uint64_t send_failures = 0;        // replies that could not be written (peer gone, EFAULT)
};

class TcpReadServer {
 public:
  // Binds options.listen and starts the threads. `auth` may be null (no tokens needed). The
  // volume set and the authorizer must outlive the server.
  static Result<std::unique_ptr<TcpReadServer>> Start(const TcpReadServerOptions& options,
                                                      const VolumeSet& volumes,
                                                      const ReadAuthorizer* auth);
  ~TcpReadServer();  // Stop()
  TcpReadServer(const TcpReadServer&) = delete;
  TcpReadServer& operator=(const TcpReadServer&) = delete;

  uint16_t port() const { return port_; }  // the kernel's choice when the port was 0
  // Stops accepting, closes every connection (a reply being written is cut off) and joins the
  // threads. Idempotent; call from one thread.
  void Stop();

  TcpReadServerStats stats() const;

  struct Core;  // io_context, acceptor, counters (tcp_read_server.cc)

 private:
  TcpReadServer() = default;
  std::shared_ptr<Core> core_;
  uint16_t port_ = 0;
  bool stopped_ = false;
};

// The port a listening socket is bound to (0 if it cannot be read).
uint16_t BoundPort(int fd);

// The read server's listen address from the agent's settings: `read_port` as given ("off" or
// "0" alone: none), or when unset the host of `first_http` with its port + 1 (port 0 stays 0:
// the kernel picks), so an agent on 0.0.0.0:18515 reads on 0.0.0.0:18516. nullopt: no server.
Result<std::optional<std::string>> ReadListenAddress(const std::optional<std::string>& read_port,
                                                     const std::string& first_http);

}  // namespace swrdma::agent
