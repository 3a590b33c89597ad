// The get half of the client's read path: registered pooled destinations, a sliding window of
// gets, verification in place, and the public entry points built on it (Read, ReadMany,
// ReadView, ReadViews, ReadEach). Lookups, keys and retries are in client.cc.
//
// Why a sliding window: lock-step windows (post K, wait for all K, verify, post the next K)
// leave the wire and the agent idle while the client verifies and while the slowest get of a
// window finishes; a new get posted as soon as one completes keeps K in flight all the time.
// Why pooled buffers: a fresh buffer per get costs page faults and zero-fill (half the time of a
// 1 MiB read); a registered buffer reused from the pool costs nothing per read.
#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "client/client_impl.h"
#include "client/volume_key.h"
#include "protocol/crc32c.h"
#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "protocol/needle.h"

namespace swrdma::client {

Result<rdma::BufferPool*> Client::Impl::Pool() {
  if (verbs_) return &verbs_->pool();  // registered for the verbs link's protection domain
  if (!pool_) {
    rdma::BufferPoolOptions po;
    po.hugepages = options_.hugepages;
    // Without a UCX context (reads over tcp only) buffers are plain memory.
    if (context_) registrar_.emplace(*context_);
    const rdma::Registrar& registrar =
        context_ ? static_cast<const rdma::Registrar&>(*registrar_) : plain_registrar_;
    SWRDMA_ASSIGN_OR_RETURN(auto pool, rdma::BufferPool::Create(registrar, po));
    pool_.emplace(std::move(pool));
  }
  return &*pool_;
}

rdma::GetBatch& Client::Impl::Batch() {
  // One batch per endpoint, reused: its slots are recycled, so a get allocates nothing.
  const void* core = endpoint_->core();
  if (!batch_ || batch_endpoint_ != core) {
    batch_ = std::make_unique<rdma::GetBatch>(*endpoint_);
    batch_endpoint_ = core;
  }
  return *batch_;
}

rdma::BufferPoolStats Client::Impl::buffer_pool_stats() const {
  if (verbs_) return verbs_->pool().stats();
  return pool_ ? pool_->stats() : rdma::BufferPoolStats{};
}

const ClientStats& Client::Impl::stats() const {
  if (verbs_ || pool_) {
    const rdma::BufferPoolStats p = buffer_pool_stats();
    stats_.reg_cache_hits = p.hits;
    stats_.reg_cache_misses = p.misses;
  }
  return stats_;
}

void Client::Impl::CountRead(const NeedleView& view) {
  if (view.http_) return;  // as before: reads and bytes count one-sided reads
  ++stats_.reads;
  stats_.bytes += view.data().size();
}

Result<NeedleView> Client::Impl::VerifyInPlace(std::string_view fid, const LookupResult& where,
                                               uint8_t version, rdma::PooledBuffer buffer,
                                               const FileId* parsed) {
  return VerifyInPlace(fid, where, version, BufferKeeper(std::move(buffer)), parsed);
}

Result<NeedleView> Client::Impl::VerifyInPlace(std::string_view fid, const LookupResult& where,
                                               uint8_t version, BufferKeeper buffer,
                                               const FileId* parsed) {
  auto fail = [&](const Status& s) {
    return Error(s.code(), fmt::format("{}: {}", fid, s.message()));
  };
  FileId own;
  if (parsed == nullptr) {
    auto p = ParseFileId(fid);
    if (!p) return fail(p.error());
    own = *p;
    parsed = &own;
  }
  auto v = ToNeedleVersion(version);
  if (!v) return fail(v.error());
  const auto* base = reinterpret_cast<const uint8_t*>(buffer.data());
  auto rec = ParseNeedleRecord({base, static_cast<size_t>(where.length)}, *v);
  if (!rec) return fail(rec.error());
  auto form = VerifyNeedle(*rec, {parsed->needle_id, parsed->cookie, where.size});
  if (!form) {
    if (form.error().code() == Code::kChecksumMismatch) ++stats_.crc_failures;
    return fail(form.error());
  }
  // The volume server answers 404 for an expired TTL needle; so does every read path here.
  // (The clock is read for a needle with a TTL only: a read of it is a few % of a small local
  // read's cost.)
  if ((rec->flags & needle_flags::kHasTtl) &&
      NeedleExpired(*rec, std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count())) {
    return fail(Status(Code::kNotFound, "needle expired (TTL), as the volume server answers"));
  }
  auto range = [base](const void* p, size_t n) {
    if (n == 0) return NeedleView::Range{};
    return NeedleView::Range{static_cast<uint32_t>(static_cast<const uint8_t*>(p) - base),
                             static_cast<uint32_t>(n)};
  };
  NeedleView view;
  view.data_ = range(rec->data.data(), rec->data.size());
  view.name_ = range(rec->name.data(), rec->name.size());
  view.mime_ = range(rec->mime.data(), rec->mime.size());
  view.stored_gzipped_ = rec->is_gzipped();
  view.chunk_manifest_ = rec->is_chunk_manifest();
  view.crc_form_ = *form;
  view.checksum_ = rec->checksum;
  view.buffer_ = std::move(buffer);
  return view;
}

template <typename WindowBatch, typename Post>
void Client::Impl::RunWindow(WindowBatch& batch, size_t window, rdma::BufferPool& pool,
                             const Post& post, std::span<const std::string> fids,
                             std::span<const PendingGet> gets, ViewResults& out,
                             const OnRead* emit) {
  // Batch slot -> which get, and when it was posted.
  std::vector<const PendingGet*> slot_get;
  std::vector<NeedleView::TimePoint> issued;
  slot_get.reserve(gets.size());
  issued.reserve(gets.size());

  // ReadEach stamps each read (posted, verified). Two clock reads per read, not three (a clock
  // read costs 65-170 ns in a VM; see docs/benchmarks.md): one read after each harvest (after the
  // callbacks, which may take long) is the issued stamp of the post that follows it, and a post's
  // issued stamp is the base of the next wait's deadline (only Acquire + post in between).
  NeedleView::TimePoint last_clock{};
  bool stamp_fresh = false;  // last_clock was read by the harvest just before this post

  auto finish = [&](size_t slot) {
    const PendingGet& g = *slot_get[slot];
    const Status& s = batch.status(slot);
    if (!s.ok()) {
      out[g.i] = Error(s.code(), fmt::format("{}: RDMA read failed: {}", fids[g.i], s.message()));
      return;
    }
    auto view =
        VerifyInPlace(fids[g.i], *g.where, g.key->version, batch.TakePooled(slot), g.parsed);
    if (view) {
      if (stamp_reads_) {
        view->issued_ = issued[slot];
        view->verified_ = std::chrono::steady_clock::now();
      }
      if (emit != nullptr) {
        (*emit)(g.i, std::move(view));
        return;
      }
    }
    out[g.i] = std::move(view);
  };

  std::vector<size_t> completed;
  auto harvest = [&] {
    batch.TakeCompleted(completed);
    for (size_t slot : completed)
      finish(slot);
    if (stamp_reads_) {
      last_clock = std::chrono::steady_clock::now();
      stamp_fresh = true;
    }
  };
  for (const PendingGet& g : gets) {
    // An erasure-coded needle over verbs takes one READ per piece (at most kMaxEcIntervals, within
    // the send queue: client/verbs_link.cc).
    const size_t need = std::max<size_t>(1, g.where->ec_intervals.size());
    if (batch.pending() + need > window) {
      // A failed wait (deadline) has drained and failed every pending get: they are harvested
      // below; the next posts fail at once on the aborted endpoint, as ReadMany always did.
      const rdma::Clock::time_point now = stamp_reads_ ? last_clock : rdma::Clock::now();
      (void)batch.WaitUntilPendingAtMost(need >= window ? 0 : window - need,
                                         now + options_.timeout);
      harvest();
    }
    auto buffer = pool.Acquire(static_cast<size_t>(g.where->length));
    if (!buffer) {
      out[g.i] =
          Error(buffer.error().code(), fmt::format("{}: {}", fids[g.i], buffer.error().message()));
      continue;
    }
    if (stamp_reads_ && !stamp_fresh) last_clock = std::chrono::steady_clock::now();
    stamp_fresh = false;
    const size_t before = batch.size();
    if (std::optional<Status> refused = post(g, std::move(*buffer)); refused) {
      out[g.i] = Error(refused->code(), fmt::format("{}: {}", fids[g.i], refused->message()));
      continue;
    }
    if (batch.size() != before + 1) continue;  // cannot happen: a post always takes one slot
    slot_get.push_back(&g);
    issued.push_back(last_clock);
  }
  (void)batch.Wait(rdma::Clock::now() + options_.timeout);
  harvest();
}

namespace {

// The READs of an erasure-coded needle's pieces (LookupResult::ec_intervals), one after the
// other into one buffer: each must lie inside its shard's registration as the agent gave it for
// the volume's generation, and together they must make the record's length; otherwise nothing
// is posted.
template <typename PendingGet, typename Segments>
std::optional<Status> PostEcReads(rdma::verbs::ReadBatch& batch, const PendingGet& g,
                                  rdma::PooledBuffer buffer, Segments& segments) {
  segments.clear();
  uint64_t total = 0;
  for (const EcInterval& r : g.where->ec_intervals) {
    const auto at = g.key->EcPieceAt(r.shard, r.offset, r.length);
    if (!at) {
      return std::optional<Status>(
          Status(Code::kStale, fmt::format("EC piece in shard {} at {} (+{}) lies outside the "
                                           "volume's RDMA keys (generation {}); looked up again",
                                           r.shard, r.offset, r.length, g.key->generation)));
    }
    segments.push_back({at->second, at->first, static_cast<size_t>(r.length)});
    total += r.length;
  }
  if (total != g.where->length || g.where->ec_intervals.size() > batch.capacity()) {
    return std::optional<Status>(Status(
        Code::kCorruption,
        fmt::format("the agent's {} EC intervals make {} bytes, not the "
                    "record's {} (or more READs than the send queue's {})",
                    g.where->ec_intervals.size(), total, g.where->length, batch.capacity())));
  }
  batch.PostPooledSegments(segments, std::move(buffer));
  return std::optional<Status>();
}

}  // namespace

void Client::Impl::GetAndVerify(std::span<const std::string> fids, std::span<const PendingGet> gets,
                                ViewResults& out, const OnRead* emit) {
  if (gets.empty()) return;
  auto fail_all = [&](const Status& s) {
    for (const PendingGet& g : gets)
      out[g.i] = Error(s.code(), fmt::format("{}: {}", fids[g.i], s.message()));
  };
  if (verbs_) {
    rdma::verbs::ReadBatch& batch = verbs_->batch();
    if (Status reset = batch.Reset(); !reset.ok()) return fail_all(reset);
    // A READ outside every key the agent gave for this generation is not posted at all.
    std::vector<rdma::verbs::ReadBatch::Segment> segments;
    const auto post = [&batch, &segments](const PendingGet& g, rdma::PooledBuffer buffer) {
      if (!g.where->ec_intervals.empty()) return PostEcReads(batch, g, std::move(buffer), segments);
      const uint64_t len = g.where->length;
      const auto* extent = g.key->VerbsExtentFor(g.where->address, len);
      if (extent == nullptr) {
        return std::optional<Status>(Status(
            Code::kStale, fmt::format("record at {:#x} (+{}) lies outside the volume's RDMA keys "
                                      "(generation {}); looked up again",
                                      g.where->address, len, g.key->generation)));
      }
      batch.PostPooled(extent->rkey, g.where->address, static_cast<size_t>(len), std::move(buffer));
      return std::optional<Status>();
    };
    const size_t window = std::min(std::max<size_t>(1, options_.max_inflight), batch.capacity());
    RunWindow(batch, window, verbs_->pool(), post, fids, gets, out, emit);
    return;
  }
  auto pool = Pool();
  if (!pool) return fail_all(pool.error());
  rdma::GetBatch& batch = Batch();
  if (Status reset = batch.Reset(); !reset.ok()) {  // cannot happen: rounds always finish
    return fail_all(reset);
  }
  const auto post = [&batch](const PendingGet& g, rdma::PooledBuffer buffer) {
    batch.PostPooled(*g.key->rkey, g.where->address, static_cast<size_t>(g.where->length),
                     std::move(buffer));
    return std::optional<Status>();
  };
  RunWindow(batch, std::max<size_t>(1, options_.max_inflight), **pool, post, fids, gets, out, emit);
}

Result<NeedleData> Client::Impl::ToNeedleData(std::string_view fid, Result<NeedleView> view,
                                              const ReadOptions& options) {
  if (!view) return Error(view.error());
  NeedleData out;
  if (view->http_) {
    out.via = "http";
    out.data = std::move(view->http_body_);
    out.stored_gzipped = view->stored_gzipped_;
    out.decompressed = view->decompressed_;
    out.mime = std::move(view->http_mime_);
    return out;
  }
  if (view->is_chunk_manifest() && options.decompress) {
    // The volume server answers such a needle with the file its chunks make up, never with the
    // manifest (issue 15, 1): returning the manifest's JSON as the file would be wrong bytes.
    return Error(Code::kUnsupported,
                 fmt::format("{}: is a chunk manifest (needle flag 0x80): its data lists the "
                             "file's chunks, which are separate fids; read those, or ask for the "
                             "manifest itself with --raw",
                             fid));
  }
  out.via = view->local_ ? "local" : "rdma";
  out.crc_form = view->crc_form();
  out.stored_gzipped = view->stored_gzipped();
  out.name = std::string(view->name());
  out.mime = std::string(view->mime());
  // A same-host view lies in a shared mapping of the volume file: a truncation or vacuum can
  // change those bytes between the check in place and this copy (the agent's fault guard
  // replaces vanished pages with zeros). The copy is checked again; bytes in registered buffers
  // (RDMA) are ours alone and need no second check.
  std::vector<uint8_t> local_copy;
  std::span<const uint8_t> data = view->data();
  if (view->local_ && !data.empty()) {
    local_copy.assign(data.begin(), data.end());
    if (MatchCrc(view->checksum_, Crc32c(local_copy)) != view->crc_form()) {
      ++stats_.crc_failures;
      return Error(Code::kChecksumMismatch,
                   fmt::format("{}: the volume file changed under the read (vacuum or truncation): "
                               "the copied data no longer matches its checksum",
                               fid));
    }
    data = local_copy;
  }
  if (view->stored_gzipped() && options.decompress) {
    auto plain = DecompressNeedleData(data);
    if (!plain) {
      const Status s = plain.error().WithContext("verified gzip data does not decompress");
      return Error(s.code(), fmt::format("{}: {}", fid, s.message()));
    }
    out.data = std::move(*plain);
    out.decompressed = true;
  } else if (!local_copy.empty()) {
    out.data = std::move(local_copy);
  } else {
    out.data.assign(data.begin(), data.end());
  }
  ++stats_.reads;
  stats_.bytes += out.data.size();
  return out;
}

std::vector<Result<NeedleData>> Client::Impl::ReadMany(std::span<const std::string> fids,
                                                       const ReadOptions& options) {
  // Each view is copied out as soon as it is verified, so its buffer goes straight back to the
  // pool: the pool holds about max_inflight buffers whatever the number of fids.
  std::vector<Result<NeedleData>> out;
  out.reserve(fids.size());
  for (size_t i = 0; i < fids.size(); ++i)
    out.emplace_back(std::unexpected(Status(Code::kInternal, "not read")));
  const OnRead convert = [&](size_t i, Result<NeedleView> view) {
    out[i] = ToNeedleData(fids[i], std::move(view), options);
  };
  ReadAllViews(fids, options, &convert);
  return out;
}

Result<NeedleData> Client::Impl::Read(std::string_view fid, const ReadOptions& options) {
  std::string f(fid);
  return std::move(ReadMany(std::span(&f, 1), options)[0]);
}

std::vector<Result<NeedleView>> Client::Impl::ReadViews(std::span<const std::string> fids,
                                                        const ReadOptions& options) {
  ViewResults out = ReadAllViews(fids, options, nullptr);
  for (const auto& r : out) {
    if (r) CountRead(*r);
  }
  return out;
}

Result<NeedleView> Client::Impl::ReadView(std::string_view fid, const ReadOptions& options) {
  std::string f(fid);
  return std::move(ReadViews(std::span(&f, 1), options)[0]);
}

void Client::Impl::ReadEach(std::span<const std::string> fids, const OnRead& on_read,
                            const ReadOptions& options) {
  stamp_reads_ = true;
  ReadAllViews(fids, options, &on_read, /*count_reads=*/true);
  stamp_reads_ = false;
}

}  // namespace swrdma::client
