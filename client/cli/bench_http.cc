// The workers of `swrdma bench` that speak plain HTTP to the agent: the fallback's GET /<fid>
// (--mode http) and batched lookups, POST /v1/lookup (--mode lookup). Each worker owns one
// keep-alive connection and does one request at a time.
#include <random>
#include <span>

#include <fmt/format.h>

#include "client/cli/bench_workers.h"
#include "protocol/crc32c.h"
#include "protocol/gzip.h"
#include "protocol/messages.h"
#include "protocol/wire.h"

namespace swrdma::cli::bench {
namespace {

// One GET /<fid> over the fallback, verified as far as HTTP allows: status 200, and CRC-32C of
// the body equal to the ETag, which the agent computes over the stored data after checking the
// needle's stored CRC. Accept-Encoding: gzip makes the body the stored bytes for compressed needles
// too, so every body is checked against the ETag; it is then gunzipped here, as the rdma path
// does. Not checked client-side (the agent does it): header id, cookie and size.
Result<uint64_t> HttpRead(client::AgentHttp& http, const std::string& fid, Tally& tally) {
  static const std::vector<std::pair<std::string, std::string>> kHeaders = {
      {"Accept-Encoding", "gzip"}};
  SWRDMA_ASSIGN_OR_RETURN(auto reply, http.Request("GET", "/" + fid, {}, {}, {}, kHeaders));
  if (reply.status != 200) {
    return Error(Code::kUnavailable, fmt::format("{}: agent answered HTTP {}: {}", fid,
                                                 reply.status, reply.body.substr(0, 200)));
  }
  const std::span<const uint8_t> body(reinterpret_cast<const uint8_t*>(reply.body.data()),
                                      reply.body.size());
  const std::string etag = reply.Header("ETag");
  const std::string crc = fmt::format("\"{:08x}\"", Crc32c(body));
  if (etag != crc) {
    ++tally.crc_failures;
    return Error(Code::kChecksumMismatch,
                 fmt::format("{}: body CRC-32C {} does not match ETag {}", fid, crc, etag));
  }
  if (reply.Header("Content-Encoding") == "gzip") {
    auto plain = Gunzip(body);
    if (!plain) return Error(plain.error().WithContext(fid + ": verified gzip body"));
    return plain->size();
  }
  return body.size();
}

// One POST /v1/lookup of `fids` (msgpack, as the client library sends it), checked: 200, one
// result per fid in order, each for the fid asked, found (ok) with a record length and size.
// Returns the answer's size in bytes.
Result<uint64_t> LookupOnce(client::AgentHttp& http, std::span<const std::string> fids) {
  const LookupRequest req{{fids.begin(), fids.end()}, {}};
  SWRDMA_ASSIGN_OR_RETURN(
      auto reply, http.Request("POST", "/v1/lookup", EncodeBody(ToJson(req), WireFormat::kMsgpack),
                               kMsgpackMime, kMsgpackMime));
  const WireFormat format = reply.content_type.find("json") != std::string::npos
                                ? WireFormat::kJson
                                : WireFormat::kMsgpack;
  auto decoded = DecodeBody(reply.body, format);
  if (reply.status != 200) {
    const bool has_error = decoded && decoded->contains("error") && (*decoded)["error"].is_string();
    return Error(
        Code::kUnavailable,
        fmt::format(
            "POST /v1/lookup of {} fids: agent answered HTTP {}: {}", fids.size(), reply.status,
            has_error ? (*decoded)["error"].get<std::string>() : reply.body.substr(0, 200)));
  }
  SWRDMA_ASSIGN_OR_RETURN(auto tree, std::move(decoded));
  SWRDMA_ASSIGN_OR_RETURN(auto resp, LookupResponseFromJson(tree));
  if (resp.results.size() != fids.size()) {
    return Error(Code::kCorruption, fmt::format("POST /v1/lookup: {} results for {} fids",
                                                resp.results.size(), fids.size()));
  }
  for (size_t i = 0; i < fids.size(); ++i) {
    const LookupResult& r = resp.results[i];
    if (r.fid != fids[i]) {
      return Error(Code::kCorruption, fmt::format("POST /v1/lookup: result {} is for {}, asked {}",
                                                  i, r.fid, fids[i]));
    }
    if (r.status != LookupStatus::kOk || r.length == 0) {
      return Error(Code::kNotFound, fmt::format("POST /v1/lookup: {}: {} {}", r.fid,
                                                LookupStatusName(r.status), r.error));
    }
  }
  return reply.body.size();
}

// The timed part of a worker: until the run ends, prepare() (untimed: choose what to ask), then
// request() timed, its answer's bytes tallied or its error kept.
template <typename Prepare, typename Request>
void TimedRequests(Shared& sh, Worker& w, Prepare prepare, Request request) {
  while (sh.Claim(1)) {
    prepare();
    const Clock::time_point t0 = Clock::now();
    Result<uint64_t> r = request();
    const uint64_t nanos = Nanos(Clock::now() - t0);
    if (r) {
      w.tally.Ok(nanos, *r);
    } else {
      w.tally.Fail(r.error().ToString());
    }
    w.done.fetch_add(1, std::memory_order_relaxed);
  }
  sh.Finished(w);
}

}  // namespace

void RunHttpWorker(Shared& sh, Worker& w, unsigned index, unsigned workers) {
  const BenchArgs& a = sh.args;
  client::AgentHttp http(sh.urls[index % sh.urls.size()], std::chrono::milliseconds(a.timeout_ms));
  auto hello = http.Request("GET", "/healthz");  // connect before the clock starts
  if (!hello || hello->status != 200) {
    w.setup_error =
        hello ? fmt::format("GET /healthz answered {}", hello->status) : hello.error().ToString();
    sh.ready.count_down();
    sh.Finished(w);
    return;
  }
  w.transports = {"http"};
  if (!a.no_warmup) {  // the workers share the fids: the agent's caches are what gets warm
    for (size_t i = index; i < sh.fids.size(); i += workers) {
      if (auto r = HttpRead(http, sh.fids[i], w.tally); !r) {
        ++w.tally.warmup_errors;
        w.tally.Fail(r.error().ToString());
      }
      w.done.fetch_add(1, std::memory_order_relaxed);
    }
    w.done.store(0, std::memory_order_relaxed);
    w.tally.errors = 0;
    w.tally.crc_failures = 0;
  }
  sh.ready.count_down();
  sh.start.wait();
  std::mt19937_64 rng(a.seed + index);
  std::uniform_int_distribution<size_t> pick(0, sh.fids.size() - 1);
  const std::string* fid = nullptr;
  TimedRequests(
      sh, w, [&] { fid = &sh.fids[pick(rng)]; }, [&] { return HttpRead(http, *fid, w.tally); });
}

void RunLookupWorker(Shared& sh, Worker& w, unsigned index) {
  const BenchArgs& a = sh.args;
  client::AgentHttp http(sh.urls[index % sh.urls.size()], std::chrono::milliseconds(a.timeout_ms));
  std::mt19937_64 rng(a.seed + index);
  std::uniform_int_distribution<size_t> pick(0, sh.fids.size() - 1);
  std::vector<std::string> batch(a.batch);
  auto fill = [&] {
    for (auto& fid : batch)
      fid = sh.fids[pick(rng)];
  };
  w.transports = {"http"};
  // One request before the clock: connects, and a refused batch (too large for the agent's
  // --max-lookup-batch, say) stops the run with the agent's own words.
  fill();
  if (auto r = LookupOnce(http, batch); !r) {
    w.setup_error = r.error().ToString();
    sh.ready.count_down();
    sh.Finished(w);
    return;
  }
  sh.ready.count_down();
  sh.start.wait();
  TimedRequests(sh, w, fill, [&] { return LookupOnce(http, batch); });
}

}  // namespace swrdma::cli::bench
