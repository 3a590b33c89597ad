// Reads through a SeaweedFS cluster: the master says where a volume's replicas are, an
// AgentDirectory says which swrdma agent serves each, and one Client per agent reads one-sidedly.
//
//   auto cluster = ClusterClient::Create({.master = {.master_url = "http://master:9333"}});
//   auto needle = (*cluster)->Read("3,01637037d6");
//
// Failover: fids are grouped by volume and read from the first replica's agent; fids that fail
// there for a reason another replica may not share (agent unreachable, volume not exported there,
// timeouts, transport and verification failures) are read from the next replica, and so on. A
// verified answer (not found, deleted, bad fid, token refused) is final: every replica would say
// the same. When every replica failed, the error names each agent tried and why.
//
// Erasure-coded volumes: the master lists every server holding shards of the volume. A needle
// that no single holder can assemble (its data shards are spread over several servers, and none
// holds enough to rebuild the rest) is put together here: every holder's agent sends the parts
// of the record it holds (Client::ReadEcPieces), and the whole record is verified as any read
// (Client::VerifyAssembled). Without read tokens an agent sends pieces only when it holds the
// needle's header (it checks the cookie): see docs/security.md.
//
// Thread: like Client, a ClusterClient is used from one thread at a time (its Clients own UCX
// workers). The MasterClient inside is thread-safe and may be shared.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "client/client.h"
#include "client/master_lookup.h"
#include "protocol/status.h"

namespace swrdma::client {

struct ClusterClientOptions {
  MasterClientOptions master;
  uint16_t agent_port = kDefaultAgentPort;
  std::string agent_map;  // file, see master_lookup.h; empty: host + agent_port only
  ClientOptions client;   // for every agent's Client; agent_url is set per agent
  // Ask the master for a read token (JWT) per fid and pass it to the agent: needed when the
  // volume servers sign reads ([jwt.signing.read] in security.toml). Costs one master request per
  // fid, so only on when asked for.
  bool read_tokens = false;
  // An agent that could not be connected is tried last (after the other replicas) for this long.
  std::chrono::milliseconds down_penalty{5000};
};

struct ClusterStats {
  uint64_t reads = 0;      // fids read successfully
  uint64_t failovers = 0;  // fids retried on another replica
  uint64_t connects = 0;   // agent Clients connected
  uint64_t connect_failures = 0;
  uint64_t tokens = 0;        // read tokens obtained from the master
  uint64_t ec_assembled = 0;  // EC needles put together from the pieces of several agents
};

// Whether a failed read is worth repeating on another replica.
bool ShouldTryNextReplica(const Status& status);

// Ok when an agent's EC pieces describe a record a needle can have: the length a needle of
// their size and version has on disk, at most `max_record` bytes (the whole record is allocated
// before any byte is verified, so an agent must not choose how much). kCorruption otherwise.
Status CheckEcRecordShape(const EcRecordPieces& pieces, uint64_t max_record);

class ClusterClient {
 public:
  static Result<std::unique_ptr<ClusterClient>> Create(const ClusterClientOptions& options);
  ~ClusterClient();

  Result<NeedleData> Read(std::string_view fid, const ReadOptions& options = {});
  // One result per fid, in order. One master lookup per volume (cached), one batched read per
  // volume and replica.
  std::vector<Result<NeedleData>> ReadMany(std::span<const std::string> fids,
                                           const ReadOptions& options = {});

  // The agents of every replica of `volume_id`, in the master's order ("http://host:18515").
  Result<std::vector<std::string>> AgentsFor(uint32_t volume_id);
  // The connected Client of `agent_url`, connected on first use and kept.
  Result<Client*> ClientFor(const std::string& agent_url);

  MasterClient& master() { return *master_; }
  const AgentDirectory& directory() const { return directory_; }
  const ClusterStats& stats() const { return stats_; }

 private:
  struct Replica {
    std::string agent;   // agent URL
    std::string server;  // volume server "host:port", for messages
  };
  ClusterClient(ClusterClientOptions options, std::unique_ptr<MasterClient> master,
                AgentDirectory directory);
  Result<std::vector<Replica>> ReplicasFor(uint32_t volume_id);
  // Reads `which` (indices into fids, all of one volume) replica by replica.
  void ReadVolume(uint32_t volume_id, std::span<const std::string> fids, std::vector<size_t> which,
                  const ReadOptions& options, std::vector<Result<NeedleData>>& out);

  // The fids of `which` that every replica refused as not held whole (unknown volume there),
  // assembled from the pieces of every replica; those that cannot be keep their `tried` lines
  // plus why. Removes the fids it answered from `which`.
  void AssembleEc(uint32_t volume_id, std::span<const std::string> fids, std::vector<size_t>& which,
                  const std::vector<Replica>& replicas, const ReadOptions& options,
                  std::vector<Result<NeedleData>>& out,
                  std::unordered_map<size_t, std::vector<std::string>>& tried);

  ClusterClientOptions options_;
  std::unique_ptr<MasterClient> master_;
  AgentDirectory directory_;
  std::map<std::string, std::unique_ptr<Client>> clients_;  // by agent URL
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> down_until_;
  ClusterStats stats_;
};

}  // namespace swrdma::client
