// Client::Impl: what a Client is behind its pointer (client/client.h): the agent's HTTP API, the
// UCX context, worker and endpoint, the registered buffer pool, the volume keys and the lookup
// cache. Implemented in client.cc (connection, lookups, keys, rounds), checked_round.cc (checked
// reads: the path on tcp and shared memory) and read_round.cc (one-sided gets, verification, the
// read entry points). Not a public API.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "client/agent_http.h"
#include "client/checked_reader.h"
#include "client/client.h"
#include "client/local_reader.h"
#include "client/needle_view.h"
#include "client/tcp_checked_reader.h"
#include "client/verbs_link.h"
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

// A PooledBuffer is four plain fields (pool core, chunk, data, size) that nothing points to: a
// view's BufferKeeper may move it with memcpy (client/needle_view.h).
template <>
inline constexpr bool kRelocatableBufferOwner<rdma::PooledBuffer> = true;

class Client::Impl {
 public:
  using OnRead = Client::OnRead;

  Impl(ClientOptions options, std::unique_ptr<AgentHttp> http);
  ~Impl();

  Status ConnectAgent();  // GET /v1/info, then ConnectUcx (or HTTP fallback)

  // What Client's public methods forward to (client.h documents them).
  Result<NeedleData> Read(std::string_view fid, const ReadOptions& options);
  std::vector<Result<NeedleData>> ReadMany(std::span<const std::string> fids,
                                           const ReadOptions& options);
  Result<NeedleView> ReadView(std::string_view fid, const ReadOptions& options);
  std::vector<Result<NeedleView>> ReadViews(std::span<const std::string> fids,
                                            const ReadOptions& options);
  void ReadEach(std::span<const std::string> fids, const OnRead& on_read,
                const ReadOptions& options);
  const AgentInfo& agent_info() const { return info_; }
  Result<VolumeList> Volumes();
  Result<std::vector<std::string>> Transports() const;
  const ClientStats& stats() const;
  rdma::BufferPoolStats buffer_pool_stats() const;

  // client/ec_pieces.cc: Client::ReadEcPieces and Client::VerifyAssembled.
  std::vector<Result<EcRecordPieces>> ReadEcPieces(std::span<const std::string> fids,
                                                   const ReadOptions& options);
  Result<NeedleData> VerifyAssembled(std::string_view fid, std::span<const uint8_t> record,
                                     uint8_t needle_version, uint32_t needle_size,
                                     const ReadOptions& options);

 private:
  struct VolumeKey;

  Status ConnectUcx();
  // Connects to the agent's verbs export when /v1/info offers one ("verbs": {"port": N}) and the
  // client may use it (--transports unset or naming verbs). Ok and verbs_ set, or why not.
  Status ConnectVerbs(const nlohmann::json& info);
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
  Result<NeedleData> ReadOverHttp(std::string_view fid, const ReadOptions& options);
  using ViewResults = std::vector<Result<NeedleView>>;
  // client/checked_round.cc: the round over checked reads (the agent checks every read and sends
  // the records; agents that serve them say so in /v1/info "checked_reads").
  // Over the agent's TCP read port (client/tcp_checked_reader.h) when the agent is on another
  // host (UCX found no shared memory to it) or the client asked for tcp only; UCX (shared
  // memory) otherwise. See ConnectAgent.
  bool checked_mode() const {
    return info_checked_reads_ && (worker_.has_value() || use_tcp_reads_);
  }
  // `over_tcp`: the agent's TCP read port even when UCX is up (verbs clients reading needles of
  // erasure-coded volumes, which the agent serves by checked reads only).
  void CheckedRound(std::span<const std::string> fids, std::span<const size_t> which,
                    const ReadOptions& options, ViewResults& out, const OnRead* emit,
                    bool over_tcp);
  Result<CheckedReads*> Checked(bool over_tcp);
  // Needles a lookup answered "ec" (erasure-coded volume) or "checked" (bytes the agent did not
  // register for one-sided reads): checked reads (client/client.cc).
  void ReadCheckedOnlyRound(std::span<const std::string> fids, std::span<const size_t> which,
                            const ReadOptions& options, ViewResults& out, const OnRead* emit);
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
  // The window itself, over UCX gets or verbs READs (client/read_round.cc).
  template <typename WindowBatch, typename Post>
  void RunWindow(WindowBatch& batch, size_t window, rdma::BufferPool& pool, const Post& post,
                 std::span<const std::string> fids, std::span<const PendingGet> gets,
                 ViewResults& out, const OnRead* emit);
  // `count_reads`: every verified view handed to `emit` is counted in the stats first (ReadEach;
  // done here rather than in a wrapper so that a read crosses one std::function, not two).
  // Before a round of RDMA READs: kUnavailable (reconnect) when the agent ended the verbs
  // connection; with read tokens on, opens (or renews) its READ access with `jwt`
  // (POST /v1/verbs/grant). Ok at once when nothing is needed.
  Status EnsureVerbsGrant(std::string_view jwt);
  ViewResults ReadAllViews(std::span<const std::string> fids, const ReadOptions& options,
                           const OnRead* emit, bool count_reads = false);
  // `parsed`: `fid` already parsed (the read path parses each fid once per round); null: parse.
  Result<NeedleView> VerifyInPlace(std::string_view fid, const LookupResult& where, uint8_t version,
                                   rdma::PooledBuffer buffer, const FileId* parsed = nullptr);
  // The same over any buffer owner (local mappings: client/local_round.cc).
  Result<NeedleView> VerifyInPlace(std::string_view fid, const LookupResult& where, uint8_t version,
                                   BufferKeeper buffer, const FileId* parsed);
  // client/local_round.cc: same-host reads over the agent's Unix socket (issue 18).
  void ConfigureLocal();  // takes "local" out of options_.transports (constructor)
  Status ConnectLocal(std::string_view socket, uint64_t instance);
  // Needles the socket answers "checked" (erasure-coded volumes) go to CheckedRound over the
  // agent's TCP read port (loopback here).
  void LocalRound(std::span<const std::string> fids, std::span<const size_t> which,
                  const ReadOptions& options, ViewResults& out, bool last, const OnRead* emit);
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
  PlainRegistrar plain_registrar_;  // the pool's without a UCX context (reads over tcp only)
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
    // The agent answered "checked" or "ec": read through the agent (no one-sided read), without
    // asking it again until `expires` (it may register the bytes by then).
    bool checked_only;
    bool ec;
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
  // The intervals of the cached EC answers that have them (one-sided over verbs), beside
  // lookup_cache_ rather than in it: its entries stay small for the common needle. Cleared and
  // erased with it (ForgetLookup, ClearLookups).
  std::unordered_map<FileId, std::vector<EcInterval>, FileIdHash> ec_intervals_cache_;
  void ForgetLookup(const FileId& fid) {
    if (lookup_cache_.erase(fid) != 0) ec_intervals_cache_.erase(fid);
  }
  void ClearLookups() {
    lookup_cache_.clear();
    ec_intervals_cache_.clear();
  }
  mutable ClientStats stats_;
  // Reused across rounds: posting a get then allocates nothing. Bound to endpoint_'s core.
  std::unique_ptr<rdma::GetBatch> batch_;
  const void* batch_endpoint_ = nullptr;
  bool info_checked_reads_ = false;  // /v1/info "checked_reads"
  // After endpoint_ and worker_: destroyed before them. Bound to checked_endpoint_'s core.
  std::unique_ptr<CheckedReader> checked_;
  const void* checked_endpoint_ = nullptr;
  uint16_t tcp_read_port_ = 0;  // /v1/info "tcp_read": {"port": N}; 0: not offered
  bool use_tcp_reads_ = false;
  std::unique_ptr<TcpCheckedReader> tcp_checked_;  // before pool_ goes
  bool stamp_reads_ = false;  // ReadEach: views carry issued/verified times (2 clock reads)
  // Same-host reads: set while the agent's local socket serves this client (then no UCX).
  std::unique_ptr<LocalReader> local_;
  std::string local_note_;     // why not local (transport info)
  bool local_allowed_ = true;  // --transports names "local", or names nothing
  bool local_only_ = false;    // --transports local: local or an error
  // One-sided RDMA READ over verbs (client/verbs_link.h): set while the agent's verbs export
  // serves this client (then no UCX, no checked reads). Declared last: goes first.
  std::unique_ptr<VerbsLink> verbs_;
  std::string verbs_note_;  // why not verbs, when the agent offered it
};

}  // namespace swrdma::client
