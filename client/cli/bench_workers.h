// What the workers of `swrdma bench` share (bench_command.cc runs them; bench_http.cc holds the
// workers that speak plain HTTP to the agent: GET /<fid> and batched POST /v1/lookup).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/agent_http.h"
#include "client/cli/latency_histogram.h"
#include "client/cli/master_args.h"

namespace swrdma::cli::bench {

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
  std::string verbs_device;  // --verbs-device
  int verbs_spin_us = 50;    // --verbs-spin-us
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
  size_t batch = 1000;     // lookup mode: fids per POST /v1/lookup
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

inline uint64_t Nanos(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

// http mode: T x K connections, one GET /<fid> at a time each.
void RunHttpWorker(Shared& sh, Worker& w, unsigned index, unsigned workers);
// lookup mode: T x K connections, one POST /v1/lookup of `batch` random fids at a time each.
void RunLookupWorker(Shared& sh, Worker& w, unsigned index);

}  // namespace swrdma::cli::bench
