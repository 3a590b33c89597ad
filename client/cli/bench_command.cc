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
//  - lookup mode: T x K connections, each doing one POST /v1/lookup of --batch random fids at a
//    time (no client cache involved), every answer checked (one ok result per fid, in order);
//    ops = fids looked up, requests and latencies per request, bytes = answer bytes.
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
#include <csignal>
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
#include "client/cli/bench_workers.h"
#include "client/cli/command_error.h"
#include "client/cli/master_args.h"
#include "client/client.h"

namespace swrdma::cli {
namespace {

// SIGINT / SIGTERM end the run like its deadline: the reads in flight finish and the figures so
// far are printed (interrupted: true), so a run may be open-ended and stopped when its work is
// seen done (the VM test stops its long-lived client once it has reconnected).
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void OnInterrupt(int) {
  g_interrupted = 1;
}

struct InterruptHandlers {
  struct sigaction old_int{}, old_term{};
  InterruptHandlers() {
    struct sigaction sa{};
    sa.sa_handler = OnInterrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  ~InterruptHandlers() {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  }
  InterruptHandlers(const InterruptHandlers&) = delete;
  InterruptHandlers& operator=(const InterruptHandlers&) = delete;
};

using bench::BenchArgs;
using bench::Clock;
using bench::Nanos;
using bench::Shared;
using bench::Tally;
using bench::Worker;

void RunRdmaWorker(Shared& sh, Worker& w, unsigned index) {
  const BenchArgs& a = sh.args;
  client::ClientOptions o;
  o.agent_url = sh.agents[index % sh.agents.size()];
  if (!a.transports.empty()) o.transports = a.transports;
  o.verbs_device = a.verbs_device;
  o.verbs_spin = std::chrono::microseconds(a.verbs_spin_us);
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
  const client::BufferPoolStats pool = c.buffer_pool_stats();
  w.tally.hugepages = pool.hugepages;
  w.tally.hugepage_note = pool.hugepage_note;
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
  j["connections"] = a.mode == "rdma" ? a.threads : a.threads * a.inflight;
  // lookup: an op is one fid looked up; the tally counted requests.
  const uint64_t per_op = a.mode == "lookup" ? a.batch : 1;
  j["ops"] = t.ops * per_op;
  j["errors"] = t.errors;
  j["crc_failures"] = t.crc_failures;
  j["seconds"] = secs;
  j["ops_per_sec"] = secs > 0 ? static_cast<double>(t.ops * per_op) / secs : 0.0;
  if (a.mode == "lookup") {
    j["batch"] = a.batch;
    j["requests"] = t.ops;
    j["requests_per_sec"] = secs > 0 ? static_cast<double>(t.ops) / secs : 0.0;
  }
  j["bytes"] = t.bytes;
  j["bytes_per_sec"] = secs > 0 ? static_cast<double>(t.bytes) / secs : 0.0;
  j["latency_of"] = window ? "window" : a.mode == "lookup" ? "request" : "read";
  j["p50_us"] = Micros(t.latency.Percentile(0.50));
  j["p90_us"] = Micros(t.latency.Percentile(0.90));
  j["p99_us"] = Micros(t.latency.Percentile(0.99));
  j["p999_us"] = Micros(t.latency.Percentile(0.999));
  j["max_us"] = Micros(t.latency.max());
  j["min_us"] = Micros(t.latency.min());
  j["mean_us"] = t.latency.mean() / 1000.0;
  const double mean_bytes = t.ops ? static_cast<double>(t.bytes) / static_cast<double>(t.ops) : 0.0;
  if (a.mode == "lookup") {
    j["answer_bytes_mean"] = mean_bytes;  // bytes / bytes_per_sec: the msgpack answers
  } else {
    j["needle_bytes_min"] = t.ops ? t.min_size : 0;
    j["needle_bytes_mean"] = mean_bytes;
    j["needle_bytes_max"] = t.max_size;
  }
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
  j["verbs_spin_us"] = a.verbs_spin_us;
  j["seed"] = a.seed;
  if (!t.first_error.empty()) j["first_error"] = t.first_error;
  return j;
}

void PrintSummary(const nlohmann::ordered_json& j) {
  auto d = [&](const char* k) { return j[k].get<double>(); };
  auto u = [&](const char* k) { return j[k].get<uint64_t>(); };
  const std::string how =
      j["mode"] == "http" ? "http (GET /<fid>)" : "rdma over " + j["transport"].get<std::string>();
  if (j["mode"] == "lookup") {
    fmt::print(
        "bench: batched lookups (POST /v1/lookup), volume {}, {} fids per request, {} "
        "connections, {} fids to choose from\n",
        u("volume"), u("batch"), u("connections"), u("fids"));
    fmt::print("  lookups  {} requests ({} fids) in {:.2f} s: {:.1f} requests/s, {:.0f} fids/s\n",
               u("requests"), u("ops"), d("seconds"), d("requests_per_sec"), d("ops_per_sec"));
    fmt::print("  latency  p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  max {:.1f} us per request\n",
               d("p50_us"), d("p90_us"), d("p99_us"), d("max_us"));
  } else {
    const std::string how = j["mode"] == "http" ? "http (GET /<fid>)"
                                                : "rdma over " + j["transport"].get<std::string>();
    fmt::print("bench: {}, volume {}, {} threads x inflight {} ({} connections), {} fids\n", how,
               u("volume"), u("threads"), u("inflight"), u("connections"), u("fids"));
    fmt::print("  reads    {} in {:.2f} s: {:.0f} reads/s, {:.1f} MiB/s (needles {:.0f} B mean)\n",
               u("ops"), d("seconds"), d("ops_per_sec"), d("bytes_per_sec") / (1 << 20),
               d("needle_bytes_mean"));
    fmt::print("  latency  p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  p99.9 {:.1f}  max {:.1f} us{}\n",
               d("p50_us"), d("p90_us"), d("p99_us"), d("p999_us"), d("max_us"),
               j["latency_of"] == "window" ? " (each read: latency of its window of inflight reads)"
                                           : " (per read)");
  }
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

  const bool http = a.mode != "rdma";  // http and lookup: one connection per worker thread
  if (http && a.threads * a.inflight > 1024) {
    throw CommandError(fmt::format("{} mode opens --threads x --inflight connections, each in a "
                                   "thread; keep it at 1024 or less",
                                   a.mode),
                       kExitUsage);
  }
  const unsigned workers = http ? a.threads * static_cast<unsigned>(a.inflight) : a.threads;
  Shared sh{.args = a, .agents = agents, .urls = urls, .fids = fids, .ready = std::latch(workers)};
  std::vector<std::unique_ptr<Worker>> ws;
  for (unsigned i = 0; i < workers; ++i) {
    ws.push_back(std::make_unique<Worker>());
    Worker& w = *ws.back();
    if (a.mode == "lookup") {
      w.thread = std::thread(bench::RunLookupWorker, std::ref(sh), std::ref(w), i);
    } else if (http) {
      w.thread = std::thread(bench::RunHttpWorker, std::ref(sh), std::ref(w), i, workers);
    } else {
      w.thread = std::thread(RunRdmaWorker, std::ref(sh), std::ref(w), i);
    }
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
  const InterruptHandlers interrupt_handlers;  // from the clock's start to the report
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
      if (now >= deadline || g_interrupted) sh.stop = true;
      if (now >= next_report && sh.finished < workers) {
        uint64_t done = 0;
        for (const auto& w : ws)
          done += w->done.load(std::memory_order_relaxed);
        const char* unit = a.mode == "lookup" ? "requests" : "reads";
        std::fprintf(stderr, "bench: %.0f s: %llu %s, %llu %s/s\n",
                     std::chrono::duration<double>(now - t0).count(),
                     static_cast<unsigned long long>(done), unit,
                     static_cast<unsigned long long>(done - last_done), unit);
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
    throw CommandError(fmt::format("{} the agent at {}: {}",
                                   a.mode == "lookup" ? "the first lookup from" : "connecting to",
                                   fmt::join(agents, ", "), setup_error),
                       kExitFailure);
  }
  const double secs = std::chrono::duration<double>(end - t0).count();
  const std::string transport = fmt::format("{}", fmt::join(ws[0]->transports, ","));
  auto report = Report(a, total, secs, transport, fids.size(), agents);
  report["interrupted"] = g_interrupted != 0;
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
  auto* ops = cmd->add_option("--ops", a->ops,
                              "Reads to do in all (default: --seconds 10); SIGINT or SIGTERM ends "
                              "any run early, with its figures")
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
  cmd->add_option("--mode", a->mode,
                  "rdma: one-sided gets; http: the agent's GET /<fid>; lookup: batched "
                  "POST /v1/lookup of --batch fids (ops = fids, latency per request)")
      ->check(CLI::IsMember({"rdma", "http", "lookup"}))
      ->capture_default_str();
  cmd->add_option("--batch", a->batch,
                  "lookup mode: fids per request (the agent refuses more than its "
                  "--max-lookup-batch, 10000 by default)")
      ->check(CLI::Range(size_t{1}, size_t{1'000'000}))
      ->capture_default_str();
  cmd->add_option("--transports", a->transports,
                  "Transports for the clients: verbs, local, tcp, or UCX's (UCX_TLS), e.g. "
                  "posix,sysv,cma; default: the best the agent offers");
  cmd->add_option("--verbs-device", a->verbs_device,
                  "RDMA device for verbs reads; default: the first active one");
  cmd->add_option("--verbs-spin-us", a->verbs_spin_us,
                  "Microseconds a wait for RDMA READs polls before it sleeps until the next "
                  "completion")
      ->check(CLI::Range(0, 10'000'000))
      ->capture_default_str();
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
