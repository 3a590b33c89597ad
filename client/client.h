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
//
// This header includes protocol/ and standard headers only (the UCX side is in
// client/client_impl.h); client/swrdma.h is the C API over it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "client/needle_view.h"
#include "protocol/crc32c.h"
#include "protocol/messages.h"
#include "protocol/status.h"

namespace swrdma::client {

inline constexpr uint16_t kDefaultAgentPort = 18515;

enum class FallbackMode : uint8_t {
  kNone,  // RDMA or an error
  kHttp,  // read over the agent's HTTP GET /<fid> when UCX cannot connect (reported in `via`)
};

struct ClientOptions {
  std::string agent_url = "http://127.0.0.1:18515";
  // UCX_TLS for the client's context; "verbs" among them (or nothing named) lets the client
  // read one-sided over verbs where the agent exports that way and this host has a device.
  std::optional<std::string> transports;
  std::string verbs_device;  // RDMA device for verbs (e.g. mlx5_0); empty: first active one
  // How long a wait for RDMA READs polls the completion queue before it sleeps on the queue's
  // completion channel (woken by the next completion): a full window completes within it on a
  // NIC, a long wait holds no core. Soft-RoCE's device is the kernel on the client's own cores.
  std::chrono::microseconds verbs_spin{50};
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

// The registered buffer pool behind the zero-copy reads (buffer_pool_stats()).
struct BufferPoolStats {
  uint64_t hits = 0;       // a read reused an idle registered buffer
  uint64_t misses = 0;     // a read had to map and register a new chunk
  uint64_t evictions = 0;  // idle chunks unregistered to stay under the pool's idle limit
  uint64_t chunks = 0;     // chunks currently mapped
  uint64_t registered_bytes = 0;
  uint64_t buffers_out = 0;   // buffers acquired and not yet released (e.g. held by views)
  std::string hugepages;      // "off", "hugetlb", "thp" (madvise) or "mixed"
  std::string hugepage_note;  // why MAP_HUGETLB was not used, when asked for and refused

  double hit_rate() const {
    const uint64_t all = hits + misses;
    return all == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(all);
  }
};

// The parts of one erasure-coded needle's record that one agent holds (Client::ReadEcPieces):
// ClusterClient assembles a needle whose data shards are spread over several servers from the
// pieces of each holder, then verifies it whole (Client::VerifyAssembled).
struct EcRecordPieces {
  struct Piece {
    uint64_t record_offset = 0;
    std::vector<uint8_t> bytes;
  };
  uint64_t record_length = 0;
  uint32_t needle_size = 0;  // as the agent's index has it
  uint8_t needle_version = 0;
  std::vector<Piece> pieces;  // in record order, disjoint; one covering it all when whole
};

class Client {
 public:
  // Fetches the agent's info and connects a UCX endpoint to its worker.
  static Result<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Result<NeedleData> Read(std::string_view fid, const ReadOptions& options = {});
  // For each fid of an erasure-coded volume: the parts of its record this agent holds (all of
  // it when it holds the record whole), or the agent's refusal. Unverified bytes: only
  // VerifyAssembled's answer may reach a user. Checked reads only (the agent's read port or
  // UCX); tokens as for Read.
  std::vector<Result<EcRecordPieces>> ReadEcPieces(std::span<const std::string> fids,
                                                   const ReadOptions& options = {});
  // Verifies a record assembled from pieces exactly as every read is verified (header id,
  // cookie and size, CRC, TTL) and decodes it as Read does.
  Result<NeedleData> VerifyAssembled(std::string_view fid, std::span<const uint8_t> record,
                                     uint8_t needle_version, uint32_t needle_size,
                                     const ReadOptions& options = {});
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

  const AgentInfo& agent_info() const;
  Result<VolumeList> Volumes();
  // Transports of the endpoint to the agent ("tcp", "posix", ...), empty over the HTTP fallback.
  Result<std::vector<std::string>> Transports() const;
  const ClientStats& stats() const;
  // Registered buffer pool: hits, misses, hugepage backing (and why not), registered bytes.
  BufferPoolStats buffer_pool_stats() const;

 private:
  // The implementation (client/client_impl.h): UCX objects, buffer pool, lookup cache. Behind a
  // pointer so that users of this header compile without UCX or rdma/ headers.
  class Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace swrdma::client
