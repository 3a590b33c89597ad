// The drop-in sidecar for `weed mount -rdma.enabled -rdma.sidecar=HOST:PORT`: the HTTP contract
// of SeaweedFS's seaweedfs-rdma-sidecar (weed/mount/rdma_client.go), served with real one-sided
// reads through swrdma agents.
//
//   GET /health  -> 200 {"status":"healthy","rdma":{"enabled":true,"connected":<bool>},...}
//                   connected: a Client to some agent is up, or a read has succeeded.
//   GET /read?file_id=FID&offset=N&size=N&volume_server=http://HOST:PORT
//                -> 200, the needle's data (decompressed) from `offset`, `size` bytes, with
//                   X-RDMA-Used: true, X-Source: rdma, Content-Type: application/octet-stream.
//                   The legacy form volume=VID&needle=ID&cookie=C (decimal) names the needle too.
//                   size 0 or absent: to the end of the data. Without volume_server the master
//                   (--master) is asked where the volume is.
//                -> non-200 with {"error":"..."} otherwise, so the mount falls back to HTTP:
//                   400 bad parameters, 416 offset + size at or past the end of the data
//                   (the mount would take the short piece of a read straddling two chunks
//                   for the end of the file: only ranges ending inside the data are served;
//                   size 0 is not refused), 404 needle/volume not found or
//                   deleted, 409 a chunk-manifest needle (flag 0x80, or a filer one:
//                   sidecar/filer_manifest.h), 403 read token refused, 502 agent unreachable or a
//                   record that failed verification, 503 all clients of the agent busy, 504
//                   timeout.
//   DELETE /cleanup -> 200 (no temporary files are ever made; accepted for the mount's sake)
//   GET /stats   -> 200 JSON counters
//
// The agent of a read is the volume server's host with --agent-port, or the --agent-map entry.
// Concurrency: `threads` HTTP threads run the reads; each read leases one of up to
// `clients_per_agent` Clients of its agent (AgentPool). Verified needles are kept briefly
// (NeedleCache), so the pieces of one chunk cost one RDMA read; X-Cache: hit|miss says which.
// With --master, an agent that refuses a read without a token (HTTP 401 -> permission denied)
// gets a master-issued token per read from then on.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "client/agent_pool.h"
#include "client/master_lookup.h"
#include "http/http_server.h"
#include "protocol/status.h"
#include "sidecar/needle_cache.h"

namespace swrdma::client {

struct SidecarOptions {
  std::string listen = "0.0.0.0:8081";
  uint16_t agent_port = kDefaultAgentPort;
  std::string agent_map;   // file; see master_lookup.h
  std::string master_url;  // optional: read tokens, and reads without volume_server
  ClientOptions client;    // template for every agent's Clients
  int threads = 8;         // reads served at once
  size_t clients_per_agent = 4;
  // Verified needle data kept for ClientOptions::lookup_cache_ttl (sidecar/needle_cache.h): the
  // mount reads a chunk in pieces, each needing the whole needle. 0: off.
  size_t cache_mb = 256;
};

struct SidecarStats {
  uint64_t reads = 0;            // 200 answers to /read
  uint64_t errors = 0;           // non-200 answers to /read
  uint64_t bytes = 0;            // body bytes of those 200 answers
  uint64_t tokens = 0;           // read tokens fetched from the master
  uint64_t past_end = 0;         // 416 answers: offset + size past the needle's data (of errors)
  uint64_t at_end = 0;           // 416 answers: offset + size exactly at the end (of errors)
  uint64_t filer_manifests = 0;  // needles refused as filer chunk manifests (not file bytes)
  uint64_t agents_connected = 0;
};

class Sidecar {
 public:
  // Listens on options.listen and serves until Stop() or destruction.
  static Result<std::unique_ptr<Sidecar>> Start(const SidecarOptions& options);
  ~Sidecar();
  Sidecar(const Sidecar&) = delete;
  Sidecar& operator=(const Sidecar&) = delete;

  uint16_t port() const { return server_->ports().at(0); }
  const std::string& endpoint() const { return server_->endpoints().at(0); }
  void Stop();

  // The request handler; thread-safe.
  agent::HttpResponse Handle(const agent::HttpRequest& request);
  SidecarStats stats() const;

 private:
  Sidecar(SidecarOptions options, AgentDirectory directory, std::unique_ptr<MasterClient> master);
  agent::HttpResponse Health() const;
  agent::HttpResponse Read(const agent::HttpRequest& request);
  agent::HttpResponse StatsJson() const;
  // The needle's verified, decompressed data, read through one of the agent's Clients.
  Result<std::vector<uint8_t>> ReadNeedle(const std::string& agent, const std::string& fid);
  bool NeedsToken(const std::string& agent);
  void SetNeedsToken(const std::string& agent);

  SidecarOptions options_;
  AgentDirectory directory_;
  std::unique_ptr<MasterClient> master_;  // null without --master
  AgentPool pool_;
  NeedleCache cache_;
  std::mutex jwt_mu_;
  std::set<std::string> needs_token_;  // agents that refused a read without a token
  std::atomic<bool> read_ok_{false};
  std::atomic<uint64_t> reads_{0}, errors_{0}, bytes_{0}, tokens_{0}, past_end_{0}, at_end_{0},
      filer_manifests_{0};
  std::unique_ptr<agent::HttpServer> server_;  // last: stopped before the rest goes
};

}  // namespace swrdma::client
