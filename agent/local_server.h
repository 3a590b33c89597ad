// Same-host reads (issue 18): a Unix socket on which local clients receive read-only descriptors
// of the exported volumes (SCM_RIGHTS) and the index answers to find needles in them. The client
// maps the file itself and verifies each record in place: no byte passes through the agent.
//
// Who may connect: the peer's credentials (SO_PEERCRED) are checked at accept. Allowed are root,
// the agent's own uid, every uid in `allow_uids` and every peer whose primary or supplementary
// group is in `allow_gids` (supplementary groups from /proc/<pid>/status). Root and the agent's
// own uid can read the files anyway; anyone else must be listed. The socket file itself is
// created with `mode` (default 0660) and group `group`, a first fence before the credential check.
//
// What a client gets: a descriptor opened O_RDONLY (never writable) of the .dat the current
// export serves, so the whole volume (also deleted needles still in the file) becomes readable
// to that user: the agent refuses to start this server while read tokens are on unless asked to
// (--local-with-tokens; see agent_main.cc and docs/security.md).
//
// One thread polls the listening socket and every connection; requests are small and answered
// inline (an index lookup, an open()). Connections beyond max_connections are refused.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

#include "agent/volume_set.h"
#include "protocol/status.h"
#include "rdma/fd_passing.h"

namespace swrdma::agent {

struct LocalServerOptions {
  std::filesystem::path path;  // the socket file; its directory is created if missing
  std::vector<uint32_t> allow_uids;
  std::vector<uint32_t> allow_gids;
  mode_t mode = 0660;
  std::optional<gid_t> group;  // chown'ed to this group when set
  size_t max_connections = 256;
};

struct LocalServerStats {
  uint64_t connections = 0;  // accepted and allowed
  uint64_t refused = 0;      // credentials not on the allow-list, or too many connections
  uint64_t fds_sent = 0;     // volume descriptors handed out
  uint64_t lookups = 0;      // fids looked up
  uint64_t malformed = 0;    // requests that did not parse (connection closed)
  uint64_t open_connections = 0;
};

// Parses "1000,1001" (decimal ids); user and group names are resolved too ("weed,1001").
Result<std::vector<uint32_t>> ParseUidList(std::string_view text);
Result<std::vector<uint32_t>> ParseGidList(std::string_view text);

struct AgentConfig;

class LocalServer;
// The agent's local server as its flags ask for (--local-socket and the --local-* flags): null
// when off (no --local-socket, or read tokens on without --local-with-tokens: logged). A bad
// flag value or a socket that cannot be set up is an error that stops the start.
Result<std::unique_ptr<LocalServer>> StartLocalServer(const AgentConfig& config,
                                                      const VolumeSet& volumes, bool tokens_on);

class LocalServer {
 public:
  static Result<std::unique_ptr<LocalServer>> Start(const VolumeSet& volumes,
                                                    LocalServerOptions options);
  ~LocalServer();
  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;

  // Closes the socket and every connection, removes the socket file. Idempotent.
  void Stop();

  const std::filesystem::path& path() const { return options_.path; }
  // Random per start: /v1/info "local_instance" tells a client that this socket is that agent's.
  uint64_t instance() const { return instance_; }
  LocalServerStats stats() const;
  // Prometheus text for /metrics (swrdma_local_*).
  std::string RenderMetrics() const;

 private:
  LocalServer(const VolumeSet& volumes, LocalServerOptions options, rdma::UniqueFd listener,
              rdma::UniqueFd wake);
  void Loop();
  bool Allowed(int fd, std::string& why) const;
  // False: close the connection.
  bool Serve(int fd);

  const VolumeSet& volumes_;
  LocalServerOptions options_;
  rdma::UniqueFd listener_;
  rdma::UniqueFd wake_;  // eventfd: Stop() wakes the loop
  uint64_t instance_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::atomic<uint64_t> connections_{0}, refused_{0}, fds_sent_{0}, lookups_{0}, malformed_{0},
      open_{0};
};

}  // namespace swrdma::agent
