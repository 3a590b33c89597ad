// The swrdma client library: reads SeaweedFS needles one-sidedly from an agent's memory.
//
//   auto client = Client::Connect({.agent_url = "http://volume-host:18515"});
//   auto needle = (*client)->Read("3,01637037d6");   // verified bytes, or a clear error
//
// Every read fetches the whole needle record with ucp_get_nbx and checks header id, cookie and
// size, then CRC-32C (raw or legacy form), before any byte is handed out; gzip data is
// decompressed only after that. A failed check is retried once after a fresh lookup (the volume
// may have been vacuumed or grown); a second failure is an error naming the fid and the cause.
//
// Thread: a Client owns a UCX worker and is used from one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "client/agent_http.h"
#include "protocol/crc32c.h"
#include "protocol/messages.h"
#include "protocol/status.h"
#include "rdma/memory_region.h"
#include "rdma/ucx_context.h"
#include "rdma/ucx_endpoint.h"
#include "rdma/ucx_worker.h"

namespace swrdma::client {

inline constexpr uint16_t kDefaultAgentPort = 18515;

enum class FallbackMode : uint8_t {
  kNone,  // RDMA or an error
  kHttp,  // read over the agent's HTTP GET /<fid> when UCX cannot connect (reported in `via`)
};

struct ClientOptions {
  std::string agent_url = "http://127.0.0.1:18515";
  std::optional<std::string> transports;    // UCX_TLS for the client's context
  std::chrono::milliseconds timeout{5000};  // per HTTP request and per batch of gets
  FallbackMode fallback = FallbackMode::kNone;
  size_t max_inflight = 64;  // gets posted at once
  size_t lookup_cache_entries = 100'000;
  // How long a cached lookup is used without asking the agent again. A delete (or a removed
  // volume) becomes visible to this client within this time; a vacuum or truncation sooner (the
  // stale read fails its checks and is looked up again).
  std::chrono::milliseconds lookup_cache_ttl{1000};
  // After a broken connection (agent restart: new worker address and rkeys) the client
  // reconnects by itself, up to this many attempts with exponential back-off from 50 ms, within
  // `timeout`; the reads in question are retried once.
  int reconnect_attempts = 6;
};

struct ReadOptions {
  bool decompress = true;  // gunzip needles stored compressed
};

struct NeedleData {
  std::vector<uint8_t> data;  // decompressed unless ReadOptions::decompress is false
  bool stored_gzipped = false;
  bool decompressed = false;
  CrcForm crc_form = CrcForm::kRaw;
  std::string name;
  std::string mime;
  std::string via;  // "rdma" or "http"
};

struct ClientStats {
  uint64_t reads = 0;
  uint64_t bytes = 0;
  uint64_t lookups = 0;  // /v1/lookup requests
  uint64_t lookup_cache_hits = 0;
  uint64_t retries = 0;  // reads repeated after a failed check or a stale generation
  uint64_t crc_failures = 0;
  uint64_t http_fallbacks = 0;
  uint64_t reconnects = 0;
};

class Client {
 public:
  // Fetches the agent's info and connects a UCX endpoint to its worker.
  static Result<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  ~Client();

  Result<NeedleData> Read(std::string_view fid, const ReadOptions& options = {});
  // Batched: one lookup for all, up to max_inflight gets in flight. One result per fid, in order.
  std::vector<Result<NeedleData>> ReadMany(std::span<const std::string> fids,
                                           const ReadOptions& options = {});

  const AgentInfo& agent_info() const { return info_; }
  Result<VolumeList> Volumes();
  // Transports of the endpoint to the agent ("tcp", "posix", ...), empty over the HTTP fallback.
  Result<std::vector<std::string>> Transports() const;
  const ClientStats& stats() const { return stats_; }

 private:
  struct VolumeKey;
  Client(ClientOptions options, std::unique_ptr<AgentHttp> http);

  Status ConnectAgent();  // GET /v1/info, then ConnectUcx (or HTTP fallback)
  Status ConnectUcx();
  Status Reconnect(const Status& why);
  void PruneKeys();
  Result<LookupResponse> LookupBatch(std::span<const std::string> fids);
  Result<const VolumeKey*> KeyFor(uint32_t volume_id, uint64_t generation);
  Result<NeedleData> Verify(std::string_view fid, const LookupResult& where, uint8_t version,
                            std::span<const uint8_t> record, const ReadOptions& options);
  Result<NeedleData> ReadOverHttp(std::string_view fid, const ReadOptions& options);
  void ReadRound(std::span<const std::string> fids, std::span<const size_t> which,
                 const ReadOptions& options, std::vector<Result<NeedleData>>& out, bool last);

  ClientOptions options_;
  std::unique_ptr<AgentHttp> http_;
  AgentInfo info_;
  std::optional<rdma::UcxContext> context_;
  std::optional<rdma::UcxWorker> worker_;
  std::optional<rdma::UcxEndpoint> endpoint_;
  std::map<std::pair<uint32_t, uint64_t>, std::unique_ptr<VolumeKey>> keys_;  // (vid, generation)
  struct CachedLookup {
    LookupResult result;
    std::chrono::steady_clock::time_point expires;
  };
  std::unordered_map<std::string, CachedLookup> lookup_cache_;
  ClientStats stats_;
};

}  // namespace swrdma::client
