#include "client/client.h"

#include <algorithm>
#include <thread>

#include <fmt/format.h>

#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "protocol/needle.h"
#include "protocol/wire.h"
#include "rdma/get.h"

namespace swrdma::client {

struct Client::VolumeKey {
  uint64_t generation = 0;
  uint8_t version = 3;
  rdma::RemoteKey rkey;
};

namespace {

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

}  // namespace

Client::Client(ClientOptions options, std::unique_ptr<AgentHttp> http)
    : options_(std::move(options)), http_(std::move(http)) {}

Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  SWRDMA_ASSIGN_OR_RETURN(HttpUrl url, ParseHttpUrl(options.agent_url, kDefaultAgentPort));
  std::unique_ptr<Client> c(
      new Client(options, std::make_unique<AgentHttp>(std::move(url), options.timeout)));
  SWRDMA_RETURN_IF_ERROR(c->ConnectAgent());
  return c;
}

Status Client::ConnectUcx() {
  // Keys and endpoint belong to the worker, the worker to the context: release in that order.
  keys_.clear();
  endpoint_.reset();
  worker_.reset();
  if (!context_) {
    rdma::UcxContextOptions co;
    co.transports = options_.transports;
    auto ctx = rdma::UcxContext::Create(co);
    if (!ctx) return ctx.error();
    context_.emplace(std::move(*ctx));
  }
  auto worker = rdma::UcxWorker::Create(*context_);
  if (!worker) return worker.error();
  worker_.emplace(std::move(*worker));
  rdma::UcxEndpointOptions eo;
  eo.connect_timeout = options_.timeout;
  // UCX 1.13 refuses peer error handling on shared-memory transports (and with it, restricts a
  // mixed endpoint to tcp). A client asking for shared memory only gets it without.
  const auto& t = options_.transports;
  if (t && t->find("tcp") == std::string::npos && t->find("rc") == std::string::npos &&
      t->find("dc") == std::string::npos && t->find("ud") == std::string::npos) {
    eo.error_handling = rdma::PeerErrorHandling::kNone;
  }
  auto ep = rdma::UcxEndpoint::Connect(*worker_, info_.worker_address, eo);
  if (!ep) return ep.error();
  endpoint_.emplace(std::move(*ep));
  return Status::Ok();
}

Status Client::ConnectAgent() {
  SWRDMA_ASSIGN_OR_RETURN(
      auto tree,
      DecodeReply(http_->Request("GET", "/v1/info", {}, {}, kMsgpackMime), "GET /v1/info"));
  SWRDMA_ASSIGN_OR_RETURN(info_, AgentInfoFromJson(tree));
  lookup_cache_.clear();
  Status ucx = ConnectUcx();
  if (!ucx.ok()) {
    keys_.clear();
    endpoint_.reset();
    worker_.reset();
    context_.reset();
    if (options_.fallback != FallbackMode::kHttp) {
      return ucx.WithContext(
          fmt::format("connecting UCX to the agent at {} (try --transports, or --fallback http)",
                      options_.agent_url));
    }
  }
  return Status::Ok();
}

Status Client::Reconnect(const Status& why) {
  // The agent restarted or the connection broke: new worker address, new rkeys. Bounded retries
  // with exponential back-off, within the client's timeout.
  ++stats_.reconnects;
  auto delay = std::chrono::milliseconds(50);
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  Status last = why;
  for (int attempt = 0; attempt < options_.reconnect_attempts; ++attempt) {
    last = ConnectAgent();
    if (last.ok()) return last;
    if (std::chrono::steady_clock::now() + delay >= deadline) break;
    std::this_thread::sleep_for(delay);
    delay *= 2;
  }
  return last.WithContext(
      fmt::format("reconnecting to the agent at {} after: {}", options_.agent_url, why.message()));
}

Result<VolumeList> Client::Volumes() {
  SWRDMA_ASSIGN_OR_RETURN(
      auto tree,
      DecodeReply(http_->Request("GET", "/v1/volumes", {}, {}, kMsgpackMime), "GET /v1/volumes"));
  return VolumeListFromJson(tree);
}

Result<std::vector<std::string>> Client::Transports() const {
  if (!endpoint_) return std::vector<std::string>{};
  SWRDMA_ASSIGN_OR_RETURN(auto t, endpoint_->Transports());
  return t.names();
}

Result<LookupResponse> Client::LookupBatch(std::span<const std::string> fids) {
  LookupRequest req{{fids.begin(), fids.end()}};
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

Result<const Client::VolumeKey*> Client::KeyFor(uint32_t vid, uint64_t generation) {
  // Keyed by (volume, generation): one batch may hold gets against an old export (cached lookup)
  // and the new one; a stale generation's key is dropped only between batches (PruneKeys).
  auto it = keys_.find({vid, generation});
  if (it != keys_.end()) return it->second.get();
  SWRDMA_ASSIGN_OR_RETURN(
      auto tree,
      DecodeReply(http_->Request("GET", fmt::format("/v1/volumes/{}", vid), {}, {}, kMsgpackMime),
                  fmt::format("GET /v1/volumes/{}", vid)));
  SWRDMA_ASSIGN_OR_RETURN(auto desc, VolumeDescriptorFromJson(tree));
  if (desc.generation != generation) {
    return Error(Code::kStale, fmt::format("volume {} moved from generation {} to {} between "
                                           "lookup and key exchange",
                                           vid, generation, desc.generation));
  }
  if (desc.regions.size() != 1) {
    return Error(Code::kUnsupported, fmt::format("volume {} has {} regions; this client reads "
                                                 "single-region volumes",
                                                 vid, desc.regions.size()));
  }
  const auto& r = desc.regions[0];
  rdma::RemoteRegion region{r.address, r.length, r.rkey, desc.generation};
  SWRDMA_ASSIGN_OR_RETURN(auto rkey, rdma::RemoteKey::Unpack(*endpoint_, region));
  auto key = std::make_unique<VolumeKey>(VolumeKey{desc.generation, desc.version, std::move(rkey)});
  const VolumeKey* out = key.get();
  keys_[{vid, generation}] = std::move(key);
  return out;
}

Result<NeedleData> Client::Verify(std::string_view fid, const LookupResult& where, uint8_t version,
                                  std::span<const uint8_t> record, const ReadOptions& options) {
  auto fail = [&](const Status& s) {
    return Error(s.code(), fmt::format("{}: {}", fid, s.message()));
  };
  auto parsed_fid = ParseFileId(fid);
  if (!parsed_fid) return fail(parsed_fid.error());
  auto v = ToNeedleVersion(version);
  if (!v) return fail(v.error());
  auto rec = ParseNeedleRecord(record, *v);
  if (!rec) return fail(rec.error());
  auto form = VerifyNeedle(*rec, {parsed_fid->needle_id, parsed_fid->cookie, where.size});
  if (!form) {
    if (form.error().code() == Code::kChecksumMismatch) ++stats_.crc_failures;
    return fail(form.error());
  }
  NeedleData out;
  out.via = "rdma";
  out.crc_form = *form;
  out.stored_gzipped = rec->is_gzipped();
  out.name = std::string(rec->name);
  out.mime = std::string(rec->mime);
  if (rec->is_gzipped() && options.decompress) {
    auto plain = Gunzip(rec->data);
    if (!plain) return fail(plain.error().WithContext("verified gzip data does not decompress"));
    out.data = std::move(*plain);
    out.decompressed = true;
  } else {
    out.data.assign(rec->data.begin(), rec->data.end());
  }
  return out;
}

Result<NeedleData> Client::ReadOverHttp(std::string_view fid, const ReadOptions& options) {
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

void Client::ReadRound(std::span<const std::string> fids, std::span<const size_t> which,
                       const ReadOptions& options, std::vector<Result<NeedleData>>& out,
                       bool last) {
  // 1. Where is each needle? Cached answers first, one batched lookup for the rest.
  std::vector<LookupResult> where(which.size());
  std::vector<size_t> to_lookup;
  std::vector<std::string> lookup_fids;
  for (size_t k = 0; k < which.size(); ++k) {
    const std::string& fid = fids[which[k]];
    auto it = last ? lookup_cache_.end() : lookup_cache_.find(fid);
    if (it != lookup_cache_.end() && it->second.expires <= std::chrono::steady_clock::now()) {
      lookup_cache_.erase(it);
      it = lookup_cache_.end();
    }
    if (it != lookup_cache_.end()) {
      where[k] = it->second.result;
      ++stats_.lookup_cache_hits;
    } else {
      to_lookup.push_back(k);
      lookup_fids.push_back(fid);
    }
  }
  constexpr size_t kLookupChunk = 10'000;
  std::vector<bool> lookup_failed(which.size(), false);
  for (size_t start = 0; start < lookup_fids.size(); start += kLookupChunk) {
    const size_t n = std::min(kLookupChunk, lookup_fids.size() - start);
    auto resp = LookupBatch(std::span(lookup_fids).subspan(start, n));
    for (size_t j = 0; j < n; ++j) {
      const size_t k = to_lookup[start + j];
      if (!resp) {
        out[which[k]] = Error(resp.error().code(),
                              fmt::format("{}: {}", fids[which[k]], resp.error().message()));
        lookup_failed[k] = true;
        continue;
      }
      where[k] = resp->results[j];
      if (where[k].status == LookupStatus::kOk) {
        if (lookup_cache_.size() >= options_.lookup_cache_entries) lookup_cache_.clear();
        lookup_cache_[where[k].fid] = {
            where[k], std::chrono::steady_clock::now() + options_.lookup_cache_ttl};
      }
    }
  }

  // 2. Post the gets, at most max_inflight at a time, then verify each record.
  struct Pending {
    size_t k;
    const VolumeKey* key;
  };
  std::vector<Pending> pending;
  for (size_t k = 0; k < which.size(); ++k) {
    const size_t i = which[k];
    if (lookup_failed[k]) continue;
    if (where[k].status != LookupStatus::kOk) {
      out[i] = Error(LookupStatusToError(where[k]));
      continue;
    }
    if (!endpoint_) {
      // Only an explicit --fallback http reads over HTTP; otherwise no UCX endpoint is an error.
      out[i] = options_.fallback == FallbackMode::kHttp
                   ? ReadOverHttp(fids[i], options)
                   : Error(Code::kUnavailable,
                           fmt::format("{}: not connected to the agent's UCX worker", fids[i]));
      continue;
    }
    auto key = KeyFor(where[k].volume_id, where[k].generation);
    if (!key) {
      out[i] = Error(key.error().code(), fmt::format("{}: {}", fids[i], key.error().message()));
      continue;
    }
    pending.push_back({k, *key});
  }
  for (size_t start = 0; start < pending.size(); start += options_.max_inflight) {
    const size_t end = std::min(pending.size(), start + options_.max_inflight);
    rdma::GetBatch batch(*endpoint_);
    for (size_t p = start; p < end; ++p) {
      auto& pd = pending[p];
      batch.Post(pd.key->rkey, where[pd.k].address, where[pd.k].length);
    }
    const Status waited = batch.Wait(rdma::Clock::now() + options_.timeout);
    for (size_t p = start; p < end; ++p) {
      auto& pd = pending[p];
      const size_t i = which[pd.k];
      const Status& s = batch.status(p - start);
      if (!s.ok()) {
        out[i] = Error(s.code(), fmt::format("{}: RDMA read failed: {}", fids[i], s.message()));
        continue;
      }
      const auto bytes = batch.data(p - start);
      out[i] = Verify(fids[i], where[pd.k], pd.key->version,
                      {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, options);
      if (out[i]) {
        ++stats_.reads;
        stats_.bytes += out[i]->data.size();
      }
    }
    (void)waited;
  }
}

std::vector<Result<NeedleData>> Client::ReadMany(std::span<const std::string> fids,
                                                 const ReadOptions& options) {
  std::vector<Result<NeedleData>> out(fids.size(), Error(Code::kInternal, "not read"));
  std::vector<size_t> which(fids.size());
  for (size_t i = 0; i < fids.size(); ++i)
    which[i] = i;
  ReadRound(fids, which, options, out, /*last=*/false);
  // Second and last round: fresh lookups and keys for what may have gone stale.
  std::vector<size_t> again;
  for (size_t i : which) {
    if (!out[i] && Retryable(out[i].error())) {
      again.push_back(i);
      lookup_cache_.erase(fids[i]);
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
                          (endpoint_ && !endpoint_->status().ok());
      if (!broken) continue;
      Status s = Reconnect(out[i].error());
      if (!s.ok()) {
        for (size_t j : again)
          out[j] = Error(s.code(), fmt::format("{}: {}", fids[j], s.message()));
        return out;
      }
      break;
    }
    ReadRound(fids, again, options, out, /*last=*/true);
  }
  PruneKeys();
  return out;
}

void Client::PruneKeys() {
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

Result<NeedleData> Client::Read(std::string_view fid, const ReadOptions& options) {
  std::string f(fid);
  return std::move(ReadMany(std::span(&f, 1), options)[0]);
}

}  // namespace swrdma::client
