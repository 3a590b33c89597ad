#include "client/client.h"
#include "client/client_impl.h"
#include "client/client_internal.h"
#include "client/volume_key.h"

#include <algorithm>
#include <thread>

#include <fmt/format.h>

#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "protocol/needle.h"
#include "protocol/wire.h"
#include "rdma/ucx/get.h"

namespace swrdma::client {

namespace detail {

Status LookupStatusToError(const LookupResult& r) {
  const std::string what = fmt::format("{}: {}", r.fid, r.error);
  switch (r.status) {
    case LookupStatus::kOk:
      return Status::Ok();
    case LookupStatus::kNotFound:
      return Status(Code::kNotFound, what);
    case LookupStatus::kDeleted:
      return Status(Code::kDeleted, what);
    case LookupStatus::kBadFid:
      return Status(Code::kInvalidArgument, what);
    case LookupStatus::kUnknownVolume:
      return Status(Code::kUnknownVolume, what);
    case LookupStatus::kNoRoom:  // push answers only (verbs push, not in this client)
      return Status(Code::kResourceExhausted, what);
  }
  return Status(Code::kInternal, what);
}

// Failures a fresh lookup may cure: the volume moved on (vacuum, growth, agent restart).
bool Retryable(const Status& s) {
  switch (s.code()) {
    case Code::kStale:
    case Code::kCorruption:
    case Code::kChecksumMismatch:
    case Code::kRdmaRemoteAccess:
    case Code::kRdmaTransport:
    case Code::kTimeout:
    case Code::kUnavailable:
    case Code::kCancelled:
      return true;
    default:
      return false;
  }
}

Result<nlohmann::json> DecodeReply(const Result<HttpReply>& reply, std::string_view what) {
  if (!reply) return Error(reply.error());
  const WireFormat f = reply->content_type.find("json") != std::string::npos ? WireFormat::kJson
                                                                             : WireFormat::kMsgpack;
  auto tree = DecodeBody(reply->body, f);
  if (reply->status != 200) {
    std::string msg = tree && tree->contains("error") && (*tree)["error"].is_string()
                          ? (*tree)["error"].get<std::string>()
                          : reply->body.substr(0, 200);
    const Code code = reply->status == 404   ? Code::kNotFound
                      : reply->status == 401 ? Code::kPermissionDenied
                      : reply->status < 500  ? Code::kInvalidArgument
                                             : Code::kUnavailable;
    return Error(code, fmt::format("{}: agent answered {}: {}", what, reply->status, msg));
  }
  if (!tree) return Error(tree.error().WithContext(what));
  return tree;
}

Status RefusalToError(std::string_view fid, ReadStatus status, std::string_view reason) {
  const std::string what = fmt::format("{}: {}", fid, reason.empty() ? "refused" : reason);
  switch (status) {
    case ReadStatus::kOk:
      return Status::Ok();
    case ReadStatus::kNotFound:
    case ReadStatus::kExpired:  // as the volume server: an expired needle is not found
      return Status(Code::kNotFound, what);
    case ReadStatus::kDeleted:
      return Status(Code::kDeleted, what);
    case ReadStatus::kBadFid:
      return Status(Code::kInvalidArgument, what);
    case ReadStatus::kUnknownVolume:
      return Status(Code::kUnknownVolume, what);
    case ReadStatus::kDenied:
      return Status(Code::kPermissionDenied, what);
    case ReadStatus::kInternal:
      break;
  }
  return Status(Code::kInternal, what);
}

}  // namespace detail

using namespace detail;

Client::Impl::Impl(ClientOptions options, std::unique_ptr<AgentHttp> http)
    : options_(std::move(options)), http_(std::move(http)) {
  ConfigureLocal();
}

Client::Impl::~Impl() = default;

Result<VolumeList> Client::Impl::Volumes() {
  SWRDMA_ASSIGN_OR_RETURN(
      auto tree,
      DecodeReply(http_->Request("GET", "/v1/volumes", {}, {}, kMsgpackMime), "GET /v1/volumes"));
  return VolumeListFromJson(tree);
}

Result<std::vector<std::string>> Client::Impl::Transports() const {
  if (local_) return std::vector<std::string>{"local"};
  if (verbs_) return std::vector<std::string>{"verbs"};        // ours, not UCX's
  if (use_tcp_reads_) return std::vector<std::string>{"tcp"};  // ours, not UCX's
  if (!endpoint_) return std::vector<std::string>{};
  SWRDMA_ASSIGN_OR_RETURN(auto t, endpoint_->Transports());
  return t.names();
}

Result<LookupResponse> Client::Impl::LookupBatch(std::span<const std::string> fids,
                                                 std::vector<std::string> jwts) {
  LookupRequest req{{fids.begin(), fids.end()}, {}};
  if (std::any_of(jwts.begin(), jwts.end(), [](const auto& t) { return !t.empty(); })) {
    req.jwts = std::move(jwts);
  }
  ++stats_.lookups;
  SWRDMA_ASSIGN_OR_RETURN(auto tree,
                          DecodeReply(http_->Request("POST", "/v1/lookup",
                                                     EncodeBody(ToJson(req), WireFormat::kMsgpack),
                                                     kMsgpackMime, kMsgpackMime),
                                      "POST /v1/lookup"));
  SWRDMA_ASSIGN_OR_RETURN(auto resp, LookupResponseFromJson(tree));
  if (resp.results.size() != fids.size()) {
    return Error(Code::kCorruption, fmt::format("lookup answered {} results for {} fids",
                                                resp.results.size(), fids.size()));
  }
  return resp;
}

Result<const Client::Impl::VolumeKey*> Client::Impl::KeyFor(uint32_t vid, uint64_t generation,
                                                            std::string_view jwt) {
  // Keyed by (volume, generation): one batch may hold gets against an old export (cached lookup)
  // and the new one; a stale generation's key is dropped only between batches (PruneKeys).
  auto it = keys_.find({vid, generation});
  if (it != keys_.end()) return it->second.get();
  SWRDMA_ASSIGN_OR_RETURN(
      auto tree,
      DecodeReply(
          http_->Request(
              "GET", fmt::format("/v1/volumes/{}", vid), {}, {}, kMsgpackMime,
              jwt.empty()
                  ? std::vector<std::pair<std::string, std::string>>{}
                  : std::vector<std::pair<std::string, std::string>>{{"Authorization",
                                                                      fmt::format("Bearer {}",
                                                                                  jwt)}}),
          fmt::format("GET /v1/volumes/{}", vid)));
  SWRDMA_ASSIGN_OR_RETURN(auto desc, VolumeDescriptorFromJson(tree));
  if (desc.generation != generation) {
    return Error(Code::kStale, fmt::format("volume {} moved from generation {} to {} between "
                                           "lookup and key exchange",
                                           vid, generation, desc.generation));
  }
  if (verbs_) {
    // One key per registered extent (the file as exported, then each tail it grew by; for an
    // erasure-coded volume, each registered shard file).
    if (desc.regions.empty() && desc.ec_regions.empty()) {
      return Error(Code::kUnavailable,
                   fmt::format("volume {}: the agent gave no RDMA key for it (its verbs "
                               "registration failed: see the agent's log)",
                               vid));
    }
    auto key = std::make_unique<VolumeKey>();
    key->generation = desc.generation;
    key->version = desc.version;
    for (const auto& r : desc.regions) {
      rdma::RemoteRegion region{r.address, r.length, r.rkey, desc.generation};
      auto rkey = rdma::verbs::UnpackRkey(region);
      if (!rkey) return Error(rkey.error().WithContext(fmt::format("volume {}", vid)));
      key->verbs.push_back({r.address, r.length, *rkey});
    }
    for (const auto& r : desc.ec_regions) {
      rdma::RemoteRegion region{r.address, r.length, r.rkey, desc.generation};
      auto rkey = rdma::verbs::UnpackRkey(region);
      if (!rkey) {
        return Error(rkey.error().WithContext(fmt::format("volume {} shard {}", vid, r.shard)));
      }
      if (r.shard >= 256) continue;  // cannot happen: the descriptor's parser refuses it
      if (key->ec_shards.size() <= r.shard) key->ec_shards.resize(r.shard + 1);
      key->ec_shards[r.shard] = {r.address, r.length, *rkey};
    }
    const VolumeKey* out = key.get();
    keys_[{vid, generation}] = std::move(key);
    return out;
  }
  if (desc.regions.size() != 1) {
    return Error(Code::kUnsupported, fmt::format("volume {} has {} regions; this client reads "
                                                 "single-region volumes",
                                                 vid, desc.regions.size()));
  }
  const auto& r = desc.regions[0];
  rdma::RemoteRegion region{r.address, r.length, r.rkey, desc.generation};
  SWRDMA_ASSIGN_OR_RETURN(auto rkey, rdma::RemoteKey::Unpack(*endpoint_, region));
  auto key = std::make_unique<VolumeKey>();
  key->generation = desc.generation;
  key->version = desc.version;
  key->rkey.emplace(std::move(rkey));
  const VolumeKey* out = key.get();
  keys_[{vid, generation}] = std::move(key);
  return out;
}

Result<NeedleData> Client::Impl::ReadOverHttp(std::string_view fid, const ReadOptions& options) {
  ++stats_.http_fallbacks;
  std::vector<std::pair<std::string, std::string>> headers;
  if (!options.decompress) headers.emplace_back("Accept-Encoding", "gzip");
  auto reply = http_->Request("GET", fmt::format("/{}", fid), {}, {}, {}, headers);
  if (!reply) return Error(reply.error());
  if (reply->status != 200) {
    const Code code = reply->status == 404   ? Code::kNotFound
                      : reply->status == 400 ? Code::kInvalidArgument
                                             : Code::kUnavailable;
    return Error(code, fmt::format("{}: HTTP fallback answered {}: {}", fid, reply->status,
                                   reply->body.substr(0, 200)));
  }
  NeedleData out;
  out.via = "http";
  out.data.assign(reply->body.begin(), reply->body.end());
  out.stored_gzipped = reply->Header("Content-Encoding") == "gzip";
  out.mime = reply->content_type;
  return out;
}

void Client::Impl::ReadRound(std::span<const std::string> fids, std::span<const size_t> which,
                             const ReadOptions& options, ViewResults& out, bool last,
                             const OnRead* emit) {
  if (local_) {
    LocalRound(fids, which, options, out, last, emit);
    return;
  }
  if ((!verbs_ || verbs_->push()) && checked_mode()) {
    if (verbs_ && verbs_->PeerGone(std::chrono::steady_clock::now())) {
      // The agent restarted (or dropped us): its pushes would find no connection. The retry
      // round reconnects.
      for (size_t i : which)
        out[i] = Error(
            Code::kUnavailable,
            fmt::format("{}: the agent ended the verbs connection; connecting again", fids[i]));
      return;
    }
    CheckedRound(fids, which, options, out, emit, use_tcp_reads_);
    return;
  }
  // 1. Where is each needle? Cached answers first, one batched lookup for the rest.
  //    Each fid is parsed once here: the parse keys the cache and verifies the record (a fid that
  //    does not parse is never cached; the agent's lookup answers it).
  std::vector<LookupResult> where(which.size());
  std::vector<FileId> parsed(which.size());
  std::vector<char> parsed_ok(which.size(), 0);
  std::vector<size_t> to_lookup;
  std::vector<std::string> lookup_fids;
  const auto now = std::chrono::steady_clock::now();  // one clock read per round, not per fid
  for (size_t k = 0; k < which.size(); ++k) {
    if (auto p = ParseFileId(fids[which[k]])) {
      parsed[k] = *p;
      parsed_ok[k] = 1;
    }
  }
  // The finds in a loop of their own: a hit costs cache misses (the cache is hit at random), and
  // independent finds back to back let the CPU overlap them.
  using CacheIt = decltype(lookup_cache_)::iterator;
  std::vector<CacheIt> found(which.size(), lookup_cache_.end());
  std::vector<size_t> expired;
  if (!last) {
    for (size_t k = 0; k < which.size(); ++k) {
      if (parsed_ok[k]) found[k] = lookup_cache_.find(parsed[k]);
    }
  }
  for (size_t k = 0; k < which.size(); ++k) {
    const std::string& fid = fids[which[k]];
    auto it = found[k];
    if (it != lookup_cache_.end() && it->second.expires <= now) {
      expired.push_back(k);  // erased below: a fid twice in `which` shares the iterator
      it = lookup_cache_.end();
    }
    if (it != lookup_cache_.end()) {
      // No fid text (the round names fids[i] in its errors): copying it could allocate.
      const CachedLookup& c = it->second;
      where[k].volume_id = c.volume_id;
      where[k].generation = c.generation;
      where[k].address = c.address;
      where[k].length = c.length;
      where[k].size = c.size;
      where[k].version = c.version;
      where[k].checked = c.checked_only;
      where[k].ec = c.ec;
      if (c.ec) {
        if (auto iv = ec_intervals_cache_.find(parsed[k]); iv != ec_intervals_cache_.end())
          where[k].ec_intervals = iv->second;
      }
      ++stats_.lookup_cache_hits;
    } else {
      to_lookup.push_back(k);
      lookup_fids.push_back(fid);
    }
  }
  for (size_t k : expired)
    ForgetLookup(parsed[k]);
  constexpr size_t kLookupChunk = 10'000;
  std::vector<bool> lookup_failed(which.size(), false);
  for (size_t start = 0; start < lookup_fids.size(); start += kLookupChunk) {
    const size_t n = std::min(kLookupChunk, lookup_fids.size() - start);
    std::vector<std::string> jwts;
    if (!options.jwt.empty() || !options.jwts.empty()) {
      for (size_t j = 0; j < n; ++j)
        jwts.emplace_back(TokenFor(options, which[to_lookup[start + j]]));
    }
    auto resp = LookupBatch(std::span(lookup_fids).subspan(start, n), std::move(jwts));
    const auto expires = std::chrono::steady_clock::now() + options_.lookup_cache_ttl;
    for (size_t j = 0; j < n; ++j) {
      const size_t k = to_lookup[start + j];
      if (!resp) {
        out[which[k]] = Error(resp.error().code(),
                              fmt::format("{}: {}", fids[which[k]], resp.error().message()));
        lookup_failed[k] = true;
        continue;
      }
      where[k] = resp->results[j];
      // EC and "checked" answers are cached too: they send the fid straight to a checked read
      // (below) until the entry expires, instead of asking the agent every time; an EC answer's
      // intervals go into their own map.
      if (where[k].status == LookupStatus::kOk && parsed_ok[k]) {
        if (lookup_cache_.size() >= options_.lookup_cache_entries) ClearLookups();
        const LookupResult& w = where[k];
        lookup_cache_[parsed[k]] = {w.generation, w.address, w.length, w.volume_id, w.size,
                                    w.version,    w.checked, w.ec,     expires};
        if (!w.ec_intervals.empty()) {
          ec_intervals_cache_[parsed[k]] = w.ec_intervals;
        } else if (w.ec) {
          ec_intervals_cache_.erase(parsed[k]);
        }
      }
    }
  }

  // 2. The gets: a sliding window of max_inflight (client/read_round.cc), verified in place.
  std::vector<PendingGet> pending;
  pending.reserve(which.size());
  // Needles of erasure-coded volumes, and of bytes the agent did not register for one-sided
  // reads (past its --max-pinned-bytes): checked reads.
  std::vector<size_t> checked_which;
  for (size_t k = 0; k < which.size(); ++k) {
    const size_t i = which[k];
    if (lookup_failed[k]) continue;
    if (where[k].status != LookupStatus::kOk) {
      out[i] = Error(LookupStatusToError(where[k]));
      continue;
    }
    // An EC needle whose pieces lie in shards the agent registered (it answered their intervals)
    // is read one-sidedly over verbs.
    const bool one_sided_ec = where[k].ec && verbs_ && !where[k].ec_intervals.empty();
    if (((where[k].ec && !one_sided_ec) || where[k].checked) && (endpoint_ || verbs_)) {
      checked_which.push_back(i);
      continue;
    }
    if (!endpoint_ && !verbs_) {
      // Only an explicit --fallback http reads over HTTP; otherwise no UCX endpoint is an error.
      if (options_.fallback != FallbackMode::kHttp) {
        out[i] = Error(Code::kUnavailable,
                       fmt::format("{}: not connected to the agent's UCX worker", fids[i]));
        continue;
      }
      auto http = ReadOverHttp(fids[i], options);
      if (!http) {
        out[i] = Error(http.error());
        continue;
      }
      NeedleView view;
      view.http_ = true;
      view.stored_gzipped_ = http->stored_gzipped;
      view.decompressed_ = http->decompressed;
      view.http_mime_ = std::move(http->mime);
      view.http_body_ = std::move(http->data);
      view.data_ = {0, static_cast<uint32_t>(view.http_body_.size())};
      out[i] = std::move(view);
      continue;
    }
    auto key = KeyFor(where[k].volume_id, where[k].generation, TokenFor(options, i));
    if (!key) {
      out[i] = Error(key.error().code(), fmt::format("{}: {}", fids[i], key.error().message()));
      continue;
    }
    pending.push_back({i, &where[k], *key, parsed_ok[k] ? &parsed[k] : nullptr});
  }
  if (verbs_ && !pending.empty()) {
    // With read tokens the agent lets this connection READ only while a token it saw is valid.
    if (Status g = EnsureVerbsGrant(TokenFor(options, pending.front().i)); !g.ok()) {
      for (const PendingGet& p : pending)
        out[p.i] = Error(g.code(), fmt::format("{}: {}", fids[p.i], g.message()));
      pending.clear();
    }
  }
  GetAndVerify(fids, pending, out, emit);
  if (!checked_which.empty()) ReadCheckedOnlyRound(fids, checked_which, options, out, emit);
}

void Client::Impl::ReadCheckedOnlyRound(std::span<const std::string> fids,
                                        std::span<const size_t> which, const ReadOptions& options,
                                        ViewResults& out, const OnRead* emit) {
  // The agent assembles an EC needle from its shards, or reads a record it did not register,
  // and sends it as a checked read: over the TCP read port from a verbs client (its UCX, if any,
  // is not reachable from here), over UCX otherwise. One-sided reads of shard extents are not
  // offered yet.
  const bool over_tcp = verbs_ != nullptr || use_tcp_reads_;
  if (!info_checked_reads_ || (over_tcp && tcp_read_port_ == 0)) {
    for (size_t i : which) {
      out[i] = Error(Code::kUnsupported,
                     fmt::format("{}: the agent serves it by checked reads only (an "
                                 "erasure-coded volume, or bytes past its --max-pinned-bytes) "
                                 "and offers none to this client (give the agent a --read-port, "
                                 "or use --fallback http)",
                                 fids[i]));
    }
    return;
  }
  CheckedRound(fids, which, options, out, emit, over_tcp);
}

Client::Impl::ViewResults Client::Impl::ReadAllViews(std::span<const std::string> fids,
                                                     const ReadOptions& options, const OnRead* emit,
                                                     bool count_reads) {
  ViewResults out;
  out.reserve(fids.size());
  for (size_t i = 0; i < fids.size(); ++i)
    out.emplace_back(std::unexpected(Status(Code::kInternal, "not read")));
  std::vector<size_t> which(fids.size());
  for (size_t i = 0; i < fids.size(); ++i)
    which[i] = i;
  // Streaming: successes of the first round go out at once; the rest after the retry round.
  std::vector<char> emitted;
  OnRead first_round;
  if (emit != nullptr) {
    emitted.assign(fids.size(), 0);
    first_round = [&](size_t i, Result<NeedleView> view) {
      emitted[i] = 1;
      if (count_reads && view) CountRead(*view);
      (*emit)(i, std::move(view));
    };
  }
  ReadRound(fids, which, options, out, /*last=*/false, emit ? &first_round : nullptr);
  // Second and last round: fresh lookups and keys for what may have gone stale.
  std::vector<size_t> again;
  for (size_t i : which) {
    if (!out[i] && Retryable(out[i].error())) {
      again.push_back(i);
      if (auto p = ParseFileId(fids[i])) ForgetLookup(*p);
    }
  }
  if (!again.empty()) {
    stats_.retries += again.size();
    keys_.clear();
    // A broken connection (agent restarted, network) is rebuilt before the retry.
    for (size_t i : again) {
      const Code code = out[i].error().code();
      const bool broken = code == Code::kRdmaTransport || code == Code::kTimeout ||
                          code == Code::kUnavailable || code == Code::kCancelled ||
                          (endpoint_ && !endpoint_->status().ok()) || (verbs_ && verbs_->broken());
      if (!broken) continue;
      Status s = Reconnect(out[i].error());
      if (!s.ok()) {
        for (size_t j : again)
          out[j] = Error(s.code(), fmt::format("{}: {}", fids[j], s.message()));
        again.clear();  // no retry round; the failures are delivered below
      }
      break;
    }
    if (!again.empty()) ReadRound(fids, again, options, out, /*last=*/true);
  }
  PruneKeys();
  if (emit != nullptr) {
    for (size_t i = 0; i < fids.size(); ++i) {
      if (emitted[i]) continue;
      if (count_reads && out[i]) CountRead(*out[i]);
      (*emit)(i, std::move(out[i]));
    }
  }
  return out;
}

void Client::Impl::PruneKeys() {
  // Keep the newest generation of each volume: older ones only served cached lookups that the
  // agent has since replaced.
  for (auto it = keys_.begin(); it != keys_.end();) {
    auto next = std::next(it);
    if (next != keys_.end() && next->first.first == it->first.first) {
      it = keys_.erase(it);
    } else {
      it = next;
    }
  }
}

}  // namespace swrdma::client
