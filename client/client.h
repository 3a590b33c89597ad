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
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "client/agent_http.h"
#include "client/needle_view.h"
#include "protocol/crc32c.h"
#include "protocol/file_id.h"
#include "protocol/messages.h"
#include "protocol/status.h"
#include "rdma/buffer_pool.h"
#include "rdma/ucx/get.h"
#include "rdma/ucx/memory_region.h"
#include "rdma/ucx/ucx_context.h"
#include "rdma/ucx/ucx_endpoint.h"
#include "rdma/ucx/ucx_worker.h"

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
  // Back the registered get buffers with 2 MiB pages (MAP_HUGETLB, else transparent huge pages;
  // buffer_pool_stats().hugepage_note says which and why).
  bool hugepages = false;
};

struct ReadOptions {
  bool decompress = true;  // gunzip needles stored compressed
  // SeaweedFS read token (JWT) for the fid, when the agent requires one. ReadMany: one token for
  // every fid (rarely valid: tokens cover one fid) unless `jwts` gives one per fid, in order.
  std::string jwt;
  std::vector<std::string> jwts;
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
  // Registered get buffers (rdma/buffer_pool.h): a hit reuses an idle registered buffer, a miss
  // maps and registers a new chunk. After warm-up nearly every read is a hit.
  uint64_t reg_cache_hits = 0;
  uint64_t reg_cache_misses = 0;
  double reg_cache_hit_rate() const {
    const uint64_t all = reg_cache_hits + reg_cache_misses;
    return all == 0 ? 0.0 : static_cast<double>(reg_cache_hits) / static_cast<double>(all);
  }
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

  // Zero copy (client/read_round.cc): the record lands in a registered pooled buffer, is
  // verified there and handed out as a view that holds the buffer. Data as stored (no gunzip;
  // ReadOptions::decompress only applies to HTTP-fallback views). Same lookups, retries and
  // errors as Read/ReadMany.
  Result<NeedleView> ReadView(std::string_view fid, const ReadOptions& options = {});
  std::vector<Result<NeedleView>> ReadViews(std::span<const std::string> fids,
                                            const ReadOptions& options = {});
  // Streaming form of ReadViews: `on_read(index, view)` for each fid as soon as it is verified
  // (completion order; reads that need the retry round come last). Gets run as a sliding
  // window of max_inflight: a new get is posted as soon as one completes.
  using OnRead = std::function<void(size_t index, Result<NeedleView> view)>;
  void ReadEach(std::span<const std::string> fids, const OnRead& on_read,
                const ReadOptions& options = {});

  const AgentInfo& agent_info() const { return info_; }
  Result<VolumeList> Volumes();
  // Transports of the endpoint to the agent ("tcp", "posix", ...), empty over the HTTP fallback.
  Result<std::vector<std::string>> Transports() const;
  const ClientStats& stats() const;
  // Registered buffer pool: hits, misses, hugepage backing (and why not), registered bytes.
  rdma::BufferPoolStats buffer_pool_stats() const;

 private:
  struct VolumeKey;
  Client(ClientOptions options, std::unique_ptr<AgentHttp> http);

  Status ConnectAgent();  // GET /v1/info, then ConnectUcx (or HTTP fallback)
  Status ConnectUcx();
  Status Reconnect(const Status& why);
  void PruneKeys();
  // `jwts`: one read token per fid, or empty (agent without read authorization).
  Result<LookupResponse> LookupBatch(std::span<const std::string> fids,
                                     std::vector<std::string> jwts = {});
  // `jwt`: a read token for a fid of the volume (region exposure with read authorization).
  Result<const VolumeKey*> KeyFor(uint32_t volume_id, uint64_t generation,
                                  std::string_view jwt = {});
  static std::string_view TokenFor(const ReadOptions& o, size_t i) {
    return i < o.jwts.size() ? std::string_view(o.jwts[i]) : std::string_view(o.jwt);
  }
  bool push_mode() const { return info_.exposure == "push" && worker_.has_value(); }
  Result<NeedleData> ReadOverHttp(std::string_view fid, const ReadOptions& options);
  using ViewResults = std::vector<Result<NeedleView>>;
  // client/push_read.cc: the round in push exposure mode: the agent puts the records into a
  // registered landing buffer of ours (we never get its keys), then each is verified.
  void PushRound(std::span<const std::string> fids, std::span<const size_t> which,
                 const ReadOptions& options, ViewResults& out, const OnRead* emit);
  Result<HttpReply> RequestProgressing(std::string_view target, std::string body);
  // `emit`, when set, receives successful reads as they complete (out[i] is then left as is).
  void ReadRound(std::span<const std::string> fids, std::span<const size_t> which,
                 const ReadOptions& options, ViewResults& out, bool last,
                 const OnRead* emit = nullptr);
  // client/read_round.cc: the get half of a round, a sliding window of max_inflight gets.
  struct PendingGet {
    size_t i;  // index in fids
    const LookupResult* where;
    const VolumeKey* key;
    const FileId* parsed;  // fids[i] parsed once in ReadRound; null when it does not parse
  };
  void GetAndVerify(std::span<const std::string> fids, std::span<const PendingGet> gets,
                    ViewResults& out, const OnRead* emit);
  ViewResults ReadAllViews(std::span<const std::string> fids, const ReadOptions& options,
                           const OnRead* emit);
  // `parsed`: `fid` already parsed (the read path parses each fid once per round); null: parse.
  Result<NeedleView> VerifyInPlace(std::string_view fid, const LookupResult& where, uint8_t version,
                                   rdma::PooledBuffer buffer, const FileId* parsed = nullptr);
  // ReadMany's copy out of a view (gunzip when asked); counts the read in stats_.
  Result<NeedleData> ToNeedleData(std::string_view fid, Result<NeedleView> view,
                                  const ReadOptions& options);
  void CountRead(const NeedleView& view);
  rdma::GetBatch& Batch();
  Result<rdma::BufferPool*> Pool();

  ClientOptions options_;
  std::unique_ptr<AgentHttp> http_;
  AgentInfo info_;
  std::optional<rdma::UcxContext> context_;
  bool agent_shm_peer_failure_ = false;          // /v1/info "shm_peer_failure": see ConnectUcx
  std::optional<rdma::UcxRegistrar> registrar_;  // the pool's way to register with context_
  // After the context (which must outlive it), before the worker: buffers of abandoned gets
  // return to the pool when the worker is destroyed.
  std::optional<rdma::BufferPool> pool_;
  std::optional<rdma::UcxWorker> worker_;
  std::optional<rdma::UcxEndpoint> endpoint_;
  std::map<std::pair<uint32_t, uint64_t>, std::unique_ptr<VolumeKey>> keys_;  // (vid, generation)
  // Only what a get needs, without LookupResult's two strings: a smaller map node is fewer cache
  // misses per hit (the cache is looked up once per read, at random).
  struct CachedLookup {
    uint64_t generation;
    uint64_t address;
    uint64_t length;
    uint32_t volume_id;
    uint32_t size;
    uint8_t version;
    std::chrono::steady_clock::time_point expires;
  };
  // Keyed by the parsed fid, not its text: hashing three integers is cheaper than hashing the
  // string, and the parse is needed anyway to verify the record.
  struct FileIdHash {
    size_t operator()(const FileId& f) const {
      uint64_t h = f.needle_id * 0x9E3779B97F4A7C15ull;
      h ^= (uint64_t{f.volume_id} << 32 | f.cookie) + 0x7F4A7C159E3779B9ull + (h << 6) + (h >> 2);
      return static_cast<size_t>(h ^ (h >> 29));
    }
  };
  std::unordered_map<FileId, CachedLookup, FileIdHash> lookup_cache_;
  mutable ClientStats stats_;
  // Reused across rounds: posting a get then allocates nothing. Bound to endpoint_'s core.
  std::unique_ptr<rdma::GetBatch> batch_;
  rdma::PooledBuffer push_landing_;  // push mode: where the agent puts records
  const void* batch_endpoint_ = nullptr;
  bool stamp_reads_ = false;  // ReadEach: views carry issued/verified times (2 clock reads)
};

}  // namespace swrdma::client
