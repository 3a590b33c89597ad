// Cluster addressing: where the replicas of a volume live (a SeaweedFS master's /dir/lookup),
// which swrdma agent serves each volume server, and read tokens (JWT) handed out by the master.
//
//   auto master = MasterClient::Create({.master_url = "http://master:9333"});
//   auto replicas = (*master)->Lookup(3);            // [{url: "10.0.0.5:8080", ...}, ...]
//   auto agents = AgentDirectory::Create(18515, "/etc/swrdma/agents.map");
//   auto agent = agents->AgentFor((*replicas)[0].url);  // "http://10.0.0.5:18515"
//
// Agent map file (--agent-map FILE): one mapping a line, `#` starts a comment, blank lines skipped:
//
//   # volume server        agent
//   10.0.0.5:8080          http://10.0.0.5:18515
//   10.0.0.6:8080          http://10.0.1.6:28515   # agent on another interface/port
//   storage-7              http://storage-7-ib:18515  # host alone: any port of that host
//
// A volume server not in the map gets its own host with the configured agent port (18515).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "client/agent_http.h"
#include "protocol/status.h"

namespace swrdma::client {

inline constexpr uint16_t kDefaultMasterPort = 9333;

// One replica of a volume, as the master names it.
struct VolumeLocation {
  std::string url;         // volume server "host:port" (no scheme)
  std::string public_url;  // may equal url
  std::string data_center;
};

// The locations in a master's /dir/lookup answer (HTTP `status`, JSON `body`):
// {"volumeOrFileId":"3","locations":[{"url":..,"publicUrl":..,"dataCenter":..}]}. An answer with
// "error" (the master says 404 for an unknown volume) is kUnknownVolume carrying its text; an
// answer without locations too; unparsable JSON is kCorruption.
Result<std::vector<VolumeLocation>> ParseDirLookup(int status, std::string_view body);

// The token of an `Authorization: Bearer <jwt>` header value (the master writes "BEARER"; the
// scheme is case-insensitive). nullopt for an empty or non-bearer value.
std::optional<std::string> BearerToken(std::string_view authorization);

struct MasterClientOptions {
  // "http://master:9333"; several masters separated by commas are tried in order.
  std::string master_url = "http://127.0.0.1:9333";
  std::chrono::milliseconds timeout{5000};  // per request
  // How long a volume's locations are used without asking again. A failed read through every
  // replica drops them at once (Forget), so a moved volume is found again on the next read.
  std::chrono::milliseconds location_ttl{30'000};
};

struct MasterStats {
  uint64_t lookups = 0;  // /dir/lookup?volumeId= requests sent
  uint64_t cache_hits = 0;
  uint64_t token_requests = 0;  // /dir/lookup?fileId=..&read=yes requests sent
};

// Thread-safe: one mutex around the cache and one around the (single, kept-alive) connection.
class MasterClient {
 public:
  static Result<std::unique_ptr<MasterClient>> Create(const MasterClientOptions& options);

  // Replicas of `volume_id`, cached for location_ttl. kUnknownVolume if the master does not know
  // it, kUnavailable/kTimeout if no master answers.
  Result<std::vector<VolumeLocation>> Lookup(uint32_t volume_id);
  // Drops the cached locations of `volume_id`.
  void Forget(uint32_t volume_id);

  // A read token for `fid` (GET /dir/lookup?fileId=<fid>&read=yes): the JWT of the answer's
  // Authorization header, nullopt when the master signs no reads (no [jwt.signing.read] key).
  // Not cached: tokens name one fid and expire.
  Result<std::optional<std::string>> ReadToken(std::string_view fid);

  MasterStats stats() const;
  const std::string& master_url() const { return options_.master_url; }

 private:
  struct Cached {
    std::vector<VolumeLocation> locations;
    std::chrono::steady_clock::time_point expires;
  };
  MasterClient(MasterClientOptions options, std::vector<std::unique_ptr<AgentHttp>> masters);
  // GET `target` on the first master that answers at all.
  Result<HttpReply> Get(const std::string& target);

  MasterClientOptions options_;
  std::mutex http_mu_;
  std::vector<std::unique_ptr<AgentHttp>> masters_;  // guarded by http_mu_
  size_t preferred_ = 0;                             // guarded by http_mu_
  mutable std::mutex mu_;
  std::unordered_map<uint32_t, Cached> cache_;  // guarded by mu_
  MasterStats stats_;                           // guarded by mu_
};

// Which agent serves which volume server: an optional map file, else the volume server's host
// with `agent_port`. Immutable after creation, so safe to share between threads.
class AgentDirectory {
 public:
  explicit AgentDirectory(uint16_t agent_port = 18515) : agent_port_(agent_port) {}
  // `map_file` empty: no map. Errors name the file and line.
  static Result<AgentDirectory> Create(uint16_t agent_port, std::string_view map_file);
  // The map file's text; `source` names it in errors.
  static Result<AgentDirectory> Parse(uint16_t agent_port, std::string_view text,
                                      std::string_view source);

  // "http://host:agent_port" (or the mapped URL) for a volume server given as "host:port",
  // "http://host:port" or "http://host:port/". kInvalidArgument for an unparsable address.
  Result<std::string> AgentFor(std::string_view volume_server) const;

  uint16_t agent_port() const { return agent_port_; }
  size_t mapped() const { return by_address_.size() + by_host_.size(); }

 private:
  uint16_t agent_port_;
  std::unordered_map<std::string, std::string> by_address_;  // "host:port" -> agent URL
  std::unordered_map<std::string, std::string> by_host_;     // "host" -> agent URL
};

// "http://host:port" for a parsed URL, brackets around IPv6 hosts.
std::string FormatHttpUrl(const HttpUrl& url);

}  // namespace swrdma::client
