// swrdma-bench-index: how fast the needle index loads a volume's .idx into a fresh RocksDB, applies
// an .idx tail, and answers point lookups from many threads. Synthetic volumes shaped like real
// ones: ids mostly increasing, ~1 % overwrites and ~1 % deletions of earlier ids, records of
// 64..2048 bytes (a sparse .dat of the matching size, so hold-back checks run for real).
// Prints one JSON object to stdout; progress goes to stderr.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <rocksdb/version.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "index/needle_index.h"
#include "protocol/needle.h"
#include "volume/idx_file.h"
#include "volume/superblock.h"

namespace fs = std::filesystem;
using swrdma::IdxEntry;
using Clock = std::chrono::steady_clock;

namespace {

struct Config {
  std::vector<uint64_t> entries = {1'000'000, 10'000'000};
  unsigned threads = 2;
  uint64_t lookups = 1'000'000;
  uint64_t tail = 100'000;
  uint64_t cache_mb = 256;
  double churn = 0.01;  // share of overwrites, and of deletions, of earlier ids
  bool write_batch = false;
  bool no_compression = false;
  bool keep = false;
  std::string dir;
};

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// CPU seconds of the whole process (RocksDB background threads included): on a shared machine
// this is steadier than wall time.
double CpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "swrdma-bench-index: " << what << "\n";
  std::exit(1);
}

// Appends `count` synthetic entries to the volume in `dir`/1.{dat,idx}, continuing at `dat_end`
// and from `next_id`; records the ids written in `ids`. Returns the new .dat end.
uint64_t AppendSynthetic(const fs::path& dir, uint64_t count, uint64_t dat_end, uint64_t& next_id,
                         std::vector<uint64_t>& ids, double churn, std::mt19937_64& rng) {
  std::vector<uint8_t> buf;
  buf.reserve(1 << 22);
  FILE* idx = std::fopen((dir / "1.idx").c_str(), "ab");
  if (!idx) Die("cannot open " + (dir / "1.idx").string());
  std::uniform_real_distribution<double> coin(0, 1);
  for (uint64_t i = 0; i < count; ++i) {
    const double c = coin(rng);
    IdxEntry e;
    e.offset = dat_end;
    if (!ids.empty() && c < churn) {  // deletion of an earlier id: a tombstone record
      e.needle_id = ids[rng() % ids.size()];
      e.size = swrdma::kTombstoneSize;
      dat_end += swrdma::NeedleRecordLength(0, swrdma::NeedleVersion::kV3);
    } else {
      const bool overwrite = !ids.empty() && c < 2 * churn;
      e.needle_id = overwrite ? ids[rng() % ids.size()] : (next_id += 1 + rng() % 3);
      if (!overwrite) ids.push_back(e.needle_id);
      e.size = static_cast<uint32_t>(64 + rng() % 1985);
      dat_end += swrdma::NeedleRecordLength(e.size, swrdma::NeedleVersion::kV3);
    }
    swrdma::EncodeIdxEntry(e, swrdma::OffsetWidth::k4, buf);
    if (buf.size() >= (1 << 22)) {
      std::fwrite(buf.data(), 1, buf.size(), idx);
      buf.clear();
    }
  }
  std::fwrite(buf.data(), 1, buf.size(), idx);
  if (std::fclose(idx) != 0) Die("writing " + (dir / "1.idx").string());
  fs::resize_file(dir / "1.dat", dat_end);  // sparse: only the size matters to the index
  return dat_end;
}

struct Latencies {
  std::vector<double> us;
  double wall_s = 0;
};

nlohmann::json Summarize(Latencies& l, uint64_t ops) {
  std::sort(l.us.begin(), l.us.end());
  auto pct = [&](double p) {
    return l.us.empty() ? 0.0 : l.us[std::min(l.us.size() - 1, size_t(p * l.us.size()))];
  };
  double sum = 0;
  for (double v : l.us)
    sum += v;
  return {{"samples", l.us.size()},
          {"p50_us", pct(0.50)},
          {"p90_us", pct(0.90)},
          {"p99_us", pct(0.99)},
          {"p999_us", pct(0.999)},
          {"max_us", l.us.empty() ? 0.0 : l.us.back()},
          {"mean_us", l.us.empty() ? 0.0 : sum / l.us.size()},
          {"ops_per_s", l.wall_s > 0 ? ops / l.wall_s : 0.0}};
}

// `per_call` keys per call: 1 uses Lookup, more use LookupMany; every call is timed.
Latencies RunLookups(const swrdma::NeedleIndex& index, const std::vector<uint64_t>& ids,
                     uint64_t total, unsigned threads, size_t per_call) {
  std::vector<std::vector<double>> per_thread(threads);
  std::atomic<bool> failed{false};
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      auto& out = per_thread[t];
      const uint64_t calls = total / threads / per_call;
      out.reserve(calls);
      std::vector<swrdma::NeedleKey> keys(per_call);
      for (uint64_t i = 0; i < calls; ++i) {
        for (auto& k : keys)
          k = {1, ids[rng() % ids.size()]};
        const auto t0 = Clock::now();
        bool ok = true;
        if (per_call == 1) {
          auto r = index.Lookup(1, keys[0].needle_id);
          ok = r && r->outcome != swrdma::LookupOutcome::kUnknownNeedle;
        } else {
          ok = index.LookupMany(keys).has_value();
        }
        out.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        if (!ok) failed = true;
      }
    });
  }
  for (auto& w : workers)
    w.join();
  Latencies l;
  l.wall_s = Seconds(Clock::now() - start);
  if (failed) Die("a lookup failed or missed a needle that was written");
  for (auto& v : per_thread)
    l.us.insert(l.us.end(), v.begin(), v.end());
  return l;
}

uint64_t DirBytes(const fs::path& p) {
  uint64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(p)) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

nlohmann::json RunOne(const Config& cfg, const fs::path& root, uint64_t n) {
  const fs::path dir = root / fmt::format("vol-{}", n);
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    const auto sb = swrdma::EncodeSuperBlock(swrdma::SuperBlock{});
    FILE* f = std::fopen((dir / "1.dat").c_str(), "wb");
    if (!f || std::fwrite(sb.data(), 1, sb.size(), f) != sb.size() || std::fclose(f) != 0) {
      Die("writing " + (dir / "1.dat").string());
    }
  }
  std::mt19937_64 rng(n);
  std::vector<uint64_t> ids;
  ids.reserve(n);
  uint64_t next_id = 0;
  std::cerr << fmt::format("[{} entries] generating .idx in {}\n", n, dir.string());
  uint64_t dat_end = AppendSynthetic(dir, n, swrdma::kSuperBlockSize, next_id, ids, cfg.churn, rng);

  swrdma::NeedleIndexOptions opts;
  opts.block_cache_bytes = cfg.cache_mb << 20;
  if (cfg.write_batch) opts.ingest_min_entries = UINT64_MAX;
  opts.compress = !cfg.no_compression;
  auto index = swrdma::NeedleIndex::Open(dir / "db", opts);
  if (!index) Die(index.error().ToString());
  swrdma::VolumeFiles files{.volume_id = 1, .dat = dir / "1.dat", .idx = dir / "1.idx"};
  auto last_report = Clock::now();
  std::optional<Clock::time_point> write_start;
  auto progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (phase == "write" && !write_start) write_start = Clock::now();
    if (Clock::now() - last_report < std::chrono::seconds(1) && done != total) return;
    last_report = Clock::now();
    std::cerr << fmt::format("[{} entries] {} {}/{}\n", n, phase, done, total);
  };

  const auto t0 = Clock::now();
  const double cpu0 = CpuSeconds();
  auto built = (*index)->SyncVolume(files, {}, progress);
  const double load_s = Seconds(Clock::now() - t0);
  const double load_cpu_s = CpuSeconds() - cpu0;
  if (!built) Die(built.error().ToString());

  // A tail: what the watcher does when the volume server appended while the agent was away.
  const uint64_t tail_n = std::min<uint64_t>(cfg.tail, n);
  dat_end = AppendSynthetic(dir, tail_n, dat_end, next_id, ids, cfg.churn, rng);
  const auto t1 = Clock::now();
  auto tail = (*index)->SyncVolume(files);
  const double tail_s = Seconds(Clock::now() - t1);
  if (!tail) Die(tail.error().ToString());
  if (tail->action != swrdma::SyncAction::kAppliedTail || tail->entries_applied != tail_n) {
    Die("the tail sync did not apply exactly the appended entries");
  }

  std::cerr << fmt::format("[{} entries] loaded in {:.2f} s; {} lookups on {} threads\n", n, load_s,
                           cfg.lookups, cfg.threads);
  RunLookups(**index, ids, std::min<uint64_t>(cfg.lookups, 200'000), cfg.threads, 1);  // warm-up
  Latencies single = RunLookups(**index, ids, cfg.lookups, cfg.threads, 1);
  Latencies batched = RunLookups(**index, ids, cfg.lookups, cfg.threads, 64);

  nlohmann::json lookup_many = Summarize(batched, cfg.lookups / 64);
  lookup_many["keys_per_call"] = 64;
  lookup_many["keys_per_s"] = batched.wall_s > 0 ? cfg.lookups / batched.wall_s : 0.0;
  nlohmann::json out = {
      {"entries", n},
      {"idx_bytes", n * 16},
      {"dat_bytes", dat_end},
      {"live", built->state.live},
      {"deleted", built->state.deleted},
      {"load",
       {{"method", cfg.write_batch ? "write_batch" : "sst_ingest"},
        {"compression", cfg.no_compression ? "none" : "lz4"},
        {"seconds", load_s},
        {"read_and_replay_seconds", write_start ? Seconds(*write_start - t0) : 0.0},
        {"write_seconds", write_start ? load_s - Seconds(*write_start - t0) : 0.0},
        {"entries_per_s", n / load_s},
        {"cpu_seconds", load_cpu_s},
        {"entries_per_cpu_s", n / load_cpu_s}}},
      {"tail",
       {{"entries", tail_n},
        {"seconds", tail_s},
        {"entries_per_s", tail_s > 0 ? tail_n / tail_s : 0.0}}},
      {"db_bytes", DirBytes(dir / "db")},
      {"lookup", Summarize(single, cfg.lookups)},
      {"lookup_many", lookup_many},
  };
  out["lookup"]["threads"] = cfg.threads;
  index->reset();
  if (!cfg.keep) fs::remove_all(dir);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{"Needle index benchmark: .idx load rate and lookup latency; JSON on stdout"};
  app.add_option("--entries", cfg.entries, "volume sizes to test, in .idx entries")->delimiter(',');
  app.add_option("--threads", cfg.threads, "lookup threads")->check(CLI::Range(1u, 1024u));
  app.add_option("--lookups", cfg.lookups, "timed lookups per volume size");
  app.add_option("--tail", cfg.tail, "entries appended after the load and applied as a tail");
  app.add_option("--cache-mb", cfg.cache_mb, "RocksDB block cache");
  app.add_option("--churn", cfg.churn, "share of overwrites, and of deletions, of earlier ids")
      ->check(CLI::Range(0.0, 0.4));
  app.add_flag("--write-batch", cfg.write_batch, "load with one WriteBatch instead of SST ingest");
  app.add_flag("--no-compression", cfg.no_compression, "store data blocks uncompressed");
  app.add_option("--dir", cfg.dir, "scratch directory (default: a new one under $TMPDIR)");
  app.add_flag("--keep", cfg.keep, "keep the generated volumes and databases");
  CLI11_PARSE(app, argc, argv);

  fs::path root = cfg.dir;
  bool remove_root = false;
  if (root.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "swrdma-bench-index-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) Die("mkdtemp " + tmpl);
    root = tmpl;
    remove_root = !cfg.keep;
  }
  fs::create_directories(root);

  nlohmann::json runs = nlohmann::json::array();
  for (uint64_t n : cfg.entries)
    runs.push_back(RunOne(cfg, root, n));
  if (remove_root) fs::remove_all(root);

  bool pass = true;
  for (const auto& r : runs) {
    pass = pass && r["load"]["entries_per_s"].get<double>() >= 2e6 &&
           r["lookup"]["p50_us"].get<double>() <= 5.0;
  }
  nlohmann::json out = {
      {"benchmark", "index"},
      {"rocksdb", fmt::format("{}.{}.{}", ROCKSDB_MAJOR, ROCKSDB_MINOR, ROCKSDB_PATCH)},
      {"hardware_concurrency", std::thread::hardware_concurrency()},
      {"runs", runs},
      {"targets", {{"load_entries_per_s", 2e6}, {"lookup_p50_us", 5.0}}},
      {"meets_targets", pass},
  };
  std::cout << out.dump(2) << std::endl;
  return 0;
}
