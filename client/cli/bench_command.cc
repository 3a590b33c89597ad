// `swrdma bench`. How it measures:
//  - Which needles: up to --sample random live fids from the agent (GET /v1/volumes/<vid>/sample),
//    or the live ones of a --fids manifest; every op reads one of them, uniformly at random.
//  - Which agents: --agent, or with --master every agent serving the volume (its replicas), worker
//    i on agent i % n; fids are sampled from the first.
//  - rdma mode: --threads T workers, each with its own Client (a Client owns a UCX worker and is
//    single-threaded). Reads are zero-copy views (Client::ReadView / ReadEach: records land in
//    the client's registered buffer pool and are verified there). --inflight 1 times each
//    ReadView; --inflight K > 1 issues ReadViews windows of K fids (K gets posted at once,
//    waited for together, then verified) and records every read of a window with the window's
//    latency (an upper bound on its own). --sliding instead keeps K gets in flight, a new one
//    posted as each completes (ReadEach over chunks of fids), and records each read's own
//    latency, posted -> verified. --copy uses the copying Read/ReadMany (windows as above).
//  - http mode: T x K connections, each in its own thread, one GET /<fid> at a time; each
//    request's latency is recorded.
//  - Warm-up (unless --no-warmup): every rdma worker reads every fid once before the clock starts,
//    so the timed reads start with the client's lookup cache full. Cached lookups expire after
//    the client's TTL (--lookup-ttl-ms): with a long TTL only one-sided gets + verification are
//    timed; with the default, a fid not re-read within the TTL costs a lookup again, as it would
//    in normal use. Lookups and cache hits are reported either way.
//  - Every read is verified as in normal use: rdma through the client library (header, cookie,
//    size, CRC-32C; gunzip when stored compressed); http as described at HttpRead.
#include "client/cli/bench_command.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <latch>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "client/cli/bench_fids.h"
#include "client/cli/bench_rdma_reads.h"
#include "client/cli/command_error.h"
#include "client/cli/latency_histogram.h"
#include "client/cli/master_args.h"
#include "client/client.h"
#include "protocol/crc32c.h"
#include "protocol/gzip.h"

namespace swrdma::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchArgs {
  std::string agent = "http://127.0.0.1:18515";
  uint32_t volume = 0;
  uint64_t ops = 0;
  double seconds = 0;
  size_t inflight = 1;
  unsigned threads = 1;
  std::string mode = "rdma";
  std::string transports;
  bool json = false;
  std::string fids_file;
  size_t sample = 10'000;
  uint64_t seed = 0;
  int timeout_ms = 5000;
  bool no_warmup = false;
  int lookup_ttl_ms = 0;   // 0: the client's default
  bool hugepages = false;  // registered get buffers on 2 MiB pages
  bool copy = false;       // Read/ReadMany (copying API, lock-step windows) instead of views
  bool sliding = false;    // K gets kept in flight (ReadEach) instead of windows of K (ReadViews)
  MasterArgs cluster;      // --master: workers spread over every agent serving the volume
};

// What one worker measured; merged into the result.
struct Tally {
  LatencyHistogram latency;
  uint64_t ops = 0;  // verified reads
  uint64_t errors = 0;
  uint64_t bytes = 0;  // data bytes handed out (decompressed)
  uint64_t crc_failures = 0;
  uint64_t lookups = 0;
  uint64_t cache_hits = 0;
  uint64_t retries = 0;
  uint64_t reconnects = 0;
  uint64_t reg_hits = 0, reg_misses = 0;  // registered buffer pool, timed part
  std::string hugepages, hugepage_note;
  uint64_t warmup_errors = 0;
  uint64_t min_size = UINT64_MAX, max_size = 0;
  std::string first_error;

  void Ok(uint64_t nanos, uint64_t size) {
    latency.Record(nanos);
    ++ops;
    bytes += size;
    min_size = std::min(min_size, size);
    max_size = std::max(max_size, size);
  }
  void Fail(std::string what) {
    if (errors++ == 0) first_error = std::move(what);
  }
  void Merge(const Tally& o) {
    latency.Merge(o.latency);
    ops += o.ops;
    if (errors == 0 && o.errors) first_error = o.first_error;
    errors += o.errors;
    bytes += o.bytes;
    crc_failures += o.crc_failures;
    lookups += o.lookups;
    cache_hits += o.cache_hits;
    retries += o.retries;
    reconnects += o.reconnects;
    reg_hits += o.reg_hits;
    reg_misses += o.reg_misses;
    if (hugepages.empty()) hugepages = o.hugepages;
    if (hugepage_note.empty()) hugepage_note = o.hugepage_note;
    warmup_errors += o.warmup_errors;
    min_size = std::min(min_size, o.min_size);
    max_size = std::max(max_size, o.max_size);
  }
};

struct alignas(64) Worker {
  std::atomic<uint64_t> done{0};  // reads finished, ok or not: for the progress lines
  Tally tally;
  std::vector<std::string> transports;
  std::string setup_error;
  Clock::time_point finished;
  std::thread thread;
};

struct Shared {
  const BenchArgs& args;
  const std::vector<std::string>& agents;  // worker i reads from agents[i % size]
  const std::vector<client::HttpUrl>& urls;
  const std::vector<std::string>& fids;
  std::latch ready;     // every worker connected and warmed up (or failed to)
  std::latch start{1};  // the clock runs
  std::atomic<uint64_t> claimed{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  size_t finished = 0;  // guarded by mu

  // Reads the caller may do next (at most `k`), 0 when the run is over.
  size_t Claim(size_t k) {
    if (stop.load(std::memory_order_relaxed)) return 0;
    if (args.ops == 0) return k;
    const uint64_t got = claimed.fetch_add(k, std::memory_order_relaxed);
    return got >= args.ops ? 0 : static_cast<size_t>(std::min<uint64_t>(k, args.ops - got));
  }
  void Finished(Worker& w) {
    w.finished = Clock::now();
    std::lock_guard lock(mu);
    ++finished;
    cv.notify_all();
  }
};

uint64_t Nanos(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

void RunRdmaWorker(Shared& sh, Worker& w, unsigned index) {
  const BenchArgs& a = sh.args;
  client::ClientOptions o;
  o.agent_url = sh.agents[index % sh.agents.size()];
  if (!a.transports.empty()) o.transports = a.transports;
  o.timeout = std::chrono::milliseconds(a.timeout_ms);
  o.max_inflight = a.inflight;
  o.hugepages = a.hugepages;
  if (a.lookup_ttl_ms > 0) o.lookup_cache_ttl = std::chrono::milliseconds(a.lookup_ttl_ms);
  auto connected = client::Client::Connect(o);
  if (!connected) {
    w.setup_error = connected.error().ToString();
    sh.ready.count_down();
    sh.Finished(w);
    return;
  }
  client::Client& c = **connected;
  if (auto t = c.Transports()) w.transports = *t;
  if (!a.no_warmup) {
    constexpr size_t kChunk = 64;  // bounds the memory of one ReadMany's results
    for (size_t i = 0; i < sh.fids.size(); i += kChunk) {
      const size_t n = std::min(kChunk, sh.fids.size() - i);
      for (auto& r : c.ReadMany(std::span(sh.fids).subspan(i, n))) {
        if (!r) {
          ++w.tally.warmup_errors;
          w.tally.Fail(r.error().ToString());
        }
      }
      w.done.fetch_add(n, std::memory_order_relaxed);
    }
    w.done.store(0, std::memory_order_relaxed);
    w.tally.errors = 0;  // warm-up failures are counted apart; the first is kept as a clue
  }
  const client::ClientStats before = c.stats();
  sh.ready.count_down();
  sh.start.wait();

  std::mt19937_64 rng(a.seed + index);
  std::uniform_int_distribution<size_t> pick(0, sh.fids.size() - 1);
  RunRdmaReads(c, {.inflight = a.inflight,
                   .copy = a.copy,
                   .sliding = a.sliding,
                   .claim = [&](size_t k) { return sh.Claim(k); },
                   .next_fid = [&]() -> const std::string& { return sh.fids[pick(rng)]; },
                   .ok = [&](uint64_t nanos, uint64_t size) { w.tally.Ok(nanos, size); },
                   .fail = [&](std::string e) { w.tally.Fail(std::move(e)); },
                   .done = [&](size_t n) { w.done.fetch_add(n, std::memory_order_relaxed); }});
  const client::ClientStats& after = c.stats();
  w.tally.crc_failures = after.crc_failures - before.crc_failures;
  w.tally.lookups = after.lookups - before.lookups;
  w.tally.cache_hits = after.lookup_cache_hits - before.lookup_cache_hits;
  w.tally.retries = after.retries - before.retries;
  w.tally.reconnects = after.reconnects - before.reconnects;
  w.tally.reg_hits = after.reg_cache_hits - before.reg_cache_hits;
  w.tally.reg_misses = after.reg_cache_misses - before.reg_cache_misses;
  const rdma::BufferPoolStats pool = c.buffer_pool_stats();
  w.tally.hugepages = pool.hugepages;
  w.tally.hugepage_note = pool.hugepage_note;
  sh.Finished(w);
}

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
  while (sh.Claim(1)) {
    const std::string& fid = sh.fids[pick(rng)];
    const Clock::time_point t0 = Clock::now();
    auto r = HttpRead(http, fid, w.tally);
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

double Micros(uint64_t nanos) {
  return static_cast<double>(nanos) / 1000.0;
}

// The JSON object, also the source of the human summary.
nlohmann::ordered_json Report(const BenchArgs& a, const Tally& t, double secs,
                              const std::string& transport, size_t fid_count,
                              const std::vector<std::string>& agents) {
  const bool window = a.mode == "rdma" && a.inflight > 1 && (a.copy || !a.sliding);
  nlohmann::ordered_json j;
  j["mode"] = a.mode;
  j["transport"] = transport;
  j["agent"] = agents.front();  // the agent the fids were sampled from
  j["agents"] = agents;         // workers spread over these (several with --master)
  j["master"] = a.cluster.master;
  j["volume"] = a.volume;
  j["threads"] = a.threads;
  j["inflight"] = a.inflight;
  j["connections"] = a.mode == "http" ? a.threads * a.inflight : a.threads;
  j["ops"] = t.ops;
  j["errors"] = t.errors;
  j["crc_failures"] = t.crc_failures;
  j["seconds"] = secs;
  j["ops_per_sec"] = secs > 0 ? static_cast<double>(t.ops) / secs : 0.0;
  j["bytes"] = t.bytes;
  j["bytes_per_sec"] = secs > 0 ? static_cast<double>(t.bytes) / secs : 0.0;
  j["latency_of"] = window ? "window" : "read";
  j["p50_us"] = Micros(t.latency.Percentile(0.50));
  j["p90_us"] = Micros(t.latency.Percentile(0.90));
  j["p99_us"] = Micros(t.latency.Percentile(0.99));
  j["p999_us"] = Micros(t.latency.Percentile(0.999));
  j["max_us"] = Micros(t.latency.max());
  j["min_us"] = Micros(t.latency.min());
  j["mean_us"] = t.latency.mean() / 1000.0;
  j["needle_bytes_min"] = t.ops ? t.min_size : 0;
  j["needle_bytes_mean"] = t.ops ? static_cast<double>(t.bytes) / static_cast<double>(t.ops) : 0.0;
  j["needle_bytes_max"] = t.max_size;
  j["fids"] = fid_count;
  j["fid_source"] = a.fids_file.empty() ? "sample" : "file";
  j["warmup"] = !a.no_warmup;
  j["warmup_errors"] = t.warmup_errors;
  j["lookups"] = t.lookups;
  j["lookup_cache_hits"] = t.cache_hits;
  j["retries"] = t.retries;
  j["reconnects"] = t.reconnects;
  if (a.mode == "rdma") {
    j["api"] = a.copy ? "copy" : "view";
    j["window_mode"] = a.inflight == 1 ? "single" : window ? "lockstep" : "sliding";
    j["reg_cache_hits"] = t.reg_hits;
    j["reg_cache_misses"] = t.reg_misses;
    const uint64_t reg = t.reg_hits + t.reg_misses;
    j["reg_cache_hit_rate"] =
        reg ? static_cast<double>(t.reg_hits) / static_cast<double>(reg) : 0.0;
    j["hugepages"] = t.hugepages;
    if (!t.hugepage_note.empty()) j["hugepage_note"] = t.hugepage_note;
  }
  j["lookup_ttl_ms"] = a.lookup_ttl_ms;  // 0: the client library's default
  j["seed"] = a.seed;
  if (!t.first_error.empty()) j["first_error"] = t.first_error;
  return j;
}

void PrintSummary(const nlohmann::ordered_json& j) {
  auto d = [&](const char* k) { return j[k].get<double>(); };
  auto u = [&](const char* k) { return j[k].get<uint64_t>(); };
  const std::string how =
      j["mode"] == "http" ? "http (GET /<fid>)" : "rdma over " + j["transport"].get<std::string>();
  fmt::print("bench: {}, volume {}, {} threads x inflight {} ({} connections), {} fids\n", how,
             u("volume"), u("threads"), u("inflight"), u("connections"), u("fids"));
  fmt::print("  reads    {} in {:.2f} s: {:.0f} reads/s, {:.1f} MiB/s (needles {:.0f} B mean)\n",
             u("ops"), d("seconds"), d("ops_per_sec"), d("bytes_per_sec") / (1 << 20),
             d("needle_bytes_mean"));
  fmt::print("  latency  p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  p99.9 {:.1f}  max {:.1f} us{}\n",
             d("p50_us"), d("p90_us"), d("p99_us"), d("p999_us"), d("max_us"),
             j["latency_of"] == "window" ? " (each read: latency of its window of inflight reads)"
                                         : " (per read)");
  fmt::print("  errors   {} ({} CRC failures), {} retries, {} lookups, {} lookup cache hits\n",
             u("errors"), u("crc_failures"), u("retries"), u("lookups"), u("lookup_cache_hits"));
  if (j.contains("first_error")) {
    fmt::print("  first error: {}\n", j["first_error"].get<std::string>());
  }
}

void RunBench(BenchArgs a) {
  if (a.ops == 0 && a.seconds == 0) a.seconds = 10;
  if (a.seed == 0) a.seed = (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  const std::vector<std::string> agents =
      a.cluster.master.empty()
          ? std::vector<std::string>{a.agent}
          : AgentsOfVolume(a.cluster, a.volume, std::chrono::milliseconds(a.timeout_ms));
  std::vector<client::HttpUrl> urls;
  for (const auto& agent : agents) {
    auto url = client::ParseHttpUrl(agent, client::kDefaultAgentPort);
    if (!url) throw CommandError(url.error());
    urls.push_back(std::move(*url));
  }
  const client::HttpUrl* url = &urls.front();

  std::vector<std::string> fids;
  if (!a.fids_file.empty()) {
    auto loaded = LoadFidManifest(a.fids_file, a.volume);
    if (!loaded) throw CommandError(loaded.error());
    fids = std::move(*loaded);
  } else {
    auto sampled =
        SampleLiveFids(*url, a.volume, a.sample, a.seed, std::chrono::milliseconds(a.timeout_ms));
    if (!sampled) throw CommandError(sampled.error());
    fids = std::move(*sampled);
  }
  if (fids.empty()) {
    throw CommandError(fmt::format("volume {} has no live needle to read{}", a.volume,
                                   a.fids_file.empty() ? "" : " in " + a.fids_file),
                       kExitFailure);
  }

  const bool http = a.mode == "http";
  if (http && a.threads * a.inflight > 1024) {
    throw CommandError(
        "http mode opens --threads x --inflight connections, each in a thread; "
        "keep it at 1024 or less",
        kExitUsage);
  }
  const unsigned workers = http ? a.threads * static_cast<unsigned>(a.inflight) : a.threads;
  Shared sh{.args = a, .agents = agents, .urls = urls, .fids = fids, .ready = std::latch(workers)};
  std::vector<std::unique_ptr<Worker>> ws;
  for (unsigned i = 0; i < workers; ++i) {
    ws.push_back(std::make_unique<Worker>());
    Worker& w = *ws.back();
    w.thread = http ? std::thread(RunHttpWorker, std::ref(sh), std::ref(w), i, workers)
                    : std::thread(RunRdmaWorker, std::ref(sh), std::ref(w), i);
  }
  // Connecting and warming up; a progress line a second if that takes long (big needles).
  const Clock::time_point warmup_start = Clock::now();
  for (auto next = warmup_start + std::chrono::seconds(1); !sh.ready.try_wait();) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (Clock::now() < next) continue;
    next += std::chrono::seconds(1);
    uint64_t done = 0;
    for (const auto& w : ws)
      done += w->done.load(std::memory_order_relaxed);
    // rdma: every worker reads every fid (each has its own lookup cache); http: they share them.
    const uint64_t total = http ? fids.size() : uint64_t{fids.size()} * workers;
    std::fprintf(stderr, "bench: warming up: %llu of %llu reads\n",
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total));
  }
  const Clock::time_point t0 = Clock::now();
  sh.start.count_down();
  std::string setup_error;
  for (const auto& w : ws) {
    if (!w->setup_error.empty() && setup_error.empty()) setup_error = w->setup_error;
  }
  if (!setup_error.empty()) sh.stop = true;

  // Progress once a second on stderr; the --seconds deadline.
  const Clock::time_point deadline = a.ops ? Clock::time_point::max()
                                           : t0 + std::chrono::duration_cast<Clock::duration>(
                                                      std::chrono::duration<double>(a.seconds));
  Clock::time_point next_report = t0 + std::chrono::seconds(1);
  uint64_t last_done = 0;
  {
    std::unique_lock lock(sh.mu);
    while (sh.finished < workers) {
      sh.cv.wait_until(lock, std::min(next_report, deadline));
      const Clock::time_point now = Clock::now();
      if (now >= deadline) sh.stop = true;
      if (now >= next_report && sh.finished < workers) {
        uint64_t done = 0;
        for (const auto& w : ws)
          done += w->done.load(std::memory_order_relaxed);
        std::fprintf(stderr, "bench: %.0f s: %llu reads, %llu reads/s\n",
                     std::chrono::duration<double>(now - t0).count(),
                     static_cast<unsigned long long>(done),
                     static_cast<unsigned long long>(done - last_done));
        last_done = done;
        next_report += std::chrono::seconds(1);
      }
    }
  }
  Tally total;
  Clock::time_point end = t0;
  for (auto& w : ws) {
    w->thread.join();
    total.Merge(w->tally);
    end = std::max(end, w->finished);
  }
  if (!setup_error.empty()) {
    throw CommandError(
        fmt::format("connecting to the agent at {}: {}", fmt::join(agents, ", "), setup_error),
        kExitFailure);
  }
  const double secs = std::chrono::duration<double>(end - t0).count();
  const std::string transport = fmt::format("{}", fmt::join(ws[0]->transports, ","));
  const auto report = Report(a, total, secs, transport, fids.size(), agents);
  if (a.json) {
    std::printf("%s\n", report.dump().c_str());
  } else {
    PrintSummary(report);
  }
  std::fflush(stdout);
  if (total.errors || total.warmup_errors) {
    throw CommandError(
        fmt::format("{} of {} reads failed ({} in warm-up); first: {}", total.errors,
                    total.ops + total.errors, total.warmup_errors, total.first_error),
        kExitFailure);
  }
}

}  // namespace

void AddBenchCommand(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand(
      "bench", "Read random live needles of a volume, verified, and report throughput and latency");
  auto* agent =
      cmd->add_option("--agent", a->agent, "Agent URL (http://HOST:PORT)")->capture_default_str();
  AddMasterOptions(cmd, a->cluster, agent, /*tokens=*/false);
  cmd->add_option("--volume", a->volume, "Volume id to read")->required();
  auto* ops = cmd->add_option("--ops", a->ops, "Reads to do in all (default: --seconds 10)")
                  ->check(CLI::PositiveNumber);
  auto* secs =
      cmd->add_option("--seconds", a->seconds, "Run for this long")->check(CLI::PositiveNumber);
  ops->excludes(secs);
  cmd->add_option("--inflight", a->inflight,
                  "rdma: reads per window (gets in flight with --sliding); http: "
                  "connections per thread")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads, each with its own client")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--mode", a->mode, "rdma: one-sided gets; http: the agent's GET /<fid>")
      ->check(CLI::IsMember({"rdma", "http"}))
      ->capture_default_str();
  cmd->add_option("--transports", a->transports,
                  "UCX transports for the clients (UCX_TLS), e.g. tcp or posix,sysv,cma");
  cmd->add_flag("--json", a->json, "Print one JSON object instead of the summary");
  cmd->add_option("--fids", a->fids_file,
                  "Read the live fids of a manifest (swrdma mkvolume --fids) instead of asking "
                  "the agent for a sample");
  cmd->add_option("--sample", a->sample, "Live fids to ask the agent for")
      ->check(CLI::Range(1, 10'000))
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed of the fid choice (0: random)");
  cmd->add_option("--timeout-ms", a->timeout_ms, "Timeout of each request, milliseconds")
      ->check(CLI::Range(1, 3'600'000))
      ->capture_default_str();
  cmd->add_flag("--hugepages", a->hugepages,
                "rdma: back the client's registered get buffers with 2 MiB pages (MAP_HUGETLB, "
                "else transparent huge pages; the JSON says which and why)");
  cmd->add_flag("--copy", a->copy,
                "rdma: use the copying API (Read / ReadMany windows) instead of zero-copy views");
  cmd->add_flag("--sliding", a->sliding,
                "rdma, --inflight > 1: keep K gets in flight, a new one posted as each completes "
                "(ReadEach), and record each read's own latency, instead of windows of K reads "
                "waited for together (ReadViews)");
  cmd->add_flag("--no-warmup", a->no_warmup,
                "Start timing at once: include lookups and cold caches in the figures");
  cmd->add_option("--lookup-ttl-ms", a->lookup_ttl_ms,
                  "How long the clients use a cached lookup (default: the client library's). "
                  "Long: after the warm-up only one-sided gets are timed; short: lookups too")
      ->check(CLI::Range(1, 86'400'000));
  cmd->callback([a] { RunBench(*a); });
}

}  // namespace swrdma::cli
