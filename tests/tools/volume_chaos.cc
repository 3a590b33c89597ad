// swrdma-volume-chaos: a test tool (not installed) that plays a SeaweedFS volume server going
// through live changes and faults on a directory the agent exports, and readers that check every
// byte they get back. Writers and readers meet through the manifest (tests/tools/chaos_manifest.h).
//
//   run       appends at a rate to some volumes and applies faults in random order:
//             delete, vacuum, truncate (a record cut in half), recreate (remove + create)
//   append | delete | vacuum | truncate | remove    one change to one volume
//   read      reads random manifest fids through the client library; prints one JSON line:
//             reads ok, retried, failed by error code, wrong bytes (must be 0)
//   verify    once the volumes are quiet: every manifest fid read once; live ones must read
//             right, gone ones must fail (one JSON line)
//
// Exit status: 0 done, 1 an operation failed, 2 bad arguments; `read` exits 3 if it saw wrong
// bytes, `verify` if it did not pass. Used by tests/e2e/chaos_test.sh and
// restart_consistency_test.sh.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tests/tools/chaos_manifest.h"
#include "tests/tools/chaos_reader.h"
#include "tests/tools/chaos_volume.h"

namespace swrdma::chaos {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) {
  g_stop = 1;
}

// Thrown only at this edge; the libraries return Status.
struct Failure {
  std::string message;
  int code = 1;
};
void Check(const Status& s, std::string_view what) {
  if (!s.ok()) throw Failure{fmt::format("{}: {}", what, s.ToString())};
}
template <typename T>
T Check(Result<T> r, std::string_view what) {
  if (!r) throw Failure{fmt::format("{}: {}", what, r.error().ToString())};
  return std::move(*r);
}

struct VolumeArgs {
  std::string dir;
  std::string manifest;
  std::string stage;  // default <dir>/.chaos-stage
  uint32_t vid = 1;
  uint64_t seed = 1;
  NeedleShape shape;
};

void AddVolumeArgs(CLI::App* cmd, VolumeArgs& a, bool one_volume) {
  cmd->add_option("--dir", a.dir, "Volume directory (the volume server's -dir)")->required();
  cmd->add_option("--manifest", a.manifest, "Manifest to append events to")->required();
  cmd->add_option("--stage", a.stage, "Stage directory for vacuum (same file system)");
  if (one_volume) cmd->add_option("--vid", a.vid, "Volume id")->required();
  cmd->add_option("--seed", a.seed, "Seed of sizes, cookies, data and fault choices")
      ->capture_default_str();
  cmd->add_option("--min-size", a.shape.min_size, "Smallest needle")->capture_default_str();
  cmd->add_option("--max-size", a.shape.max_size, "Largest needle")->capture_default_str();
  cmd->add_option("--gzip-fraction", a.shape.gzip_fraction, "Share stored gzip-compressed")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
}

fs::path StageOf(const VolumeArgs& a) {
  return a.stage.empty() ? fs::path(a.dir) / ".chaos-stage" : fs::path(a.stage);
}

ChaosVolume OpenVolume(const VolumeArgs& a, uint32_t vid) {
  ManifestReader known(a.manifest);
  Check(known.Refresh(), "reading the manifest");
  std::error_code ec;
  fs::create_directories(a.dir, ec);
  return Check(
      ChaosVolume::OpenOrCreate(a.dir, vid, StageOf(a), known.MaxNeedleId(vid) + 1, a.seed),
      fmt::format("opening volume {} in {}", vid, a.dir));
}

// ---- run: a volume server with faults -------------------------------------------------------

struct RunArgs {
  VolumeArgs v;
  std::vector<uint32_t> vids = {1, 2, 3};
  double seconds = 10;
  double rate = 100;  // appends per second over all volumes
  int fault_every_ms = 1500;
  std::vector<std::string> faults = {"delete", "vacuum", "truncate", "recreate"};
  size_t delete_batch = 8;
};

int Run(const RunArgs& a) {
  auto manifest = Check(ManifestWriter::Open(a.v.manifest), "opening the manifest");
  std::vector<ChaosVolume> volumes;
  for (uint32_t vid : a.vids)
    volumes.push_back(OpenVolume(a.v, vid));
  std::mt19937_64 rng(a.v.seed);
  std::map<std::string, uint64_t> done;
  uint64_t appended = 0, errors = 0;
  const auto start = Clock::now();
  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.seconds));
  const auto append_period = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(1.0 / std::max(0.001, a.rate)));
  auto next_append = start;
  auto next_fault = start + std::chrono::milliseconds(a.fault_every_ms);
  auto log = [&](const std::string& what) {
    std::fprintf(stderr, "[writer +%.1fs] %s\n",
                 std::chrono::duration<double>(Clock::now() - start).count(), what.c_str());
  };
  while (!g_stop && Clock::now() < deadline) {
    const auto now = Clock::now();
    if (now >= next_fault && !a.faults.empty()) {
      next_fault = now + std::chrono::milliseconds(a.fault_every_ms);
      const std::string& fault =
          a.faults[std::uniform_int_distribution<size_t>(0, a.faults.size() - 1)(rng)];
      ChaosVolume& v = volumes[std::uniform_int_distribution<size_t>(0, volumes.size() - 1)(rng)];
      Status s;
      std::string detail;
      if (fault == "delete") {
        const size_t n = std::uniform_int_distribution<size_t>(1, a.delete_batch)(rng);
        auto r = v.DeleteRandom(n, manifest);
        s = r ? Status::Ok() : r.error();
        if (r) detail = fmt::format("{} needles", *r);
      } else if (fault == "vacuum") {
        s = v.Vacuum(manifest);
        detail = fmt::format("{} live needles kept", v.live());
      } else if (fault == "truncate") {
        s = v.TruncateLast(manifest);
        if (s.code() == Code::kNotFound) s = Status::Ok();  // empty volume: nothing to cut
      } else if (fault == "recreate") {
        const auto pause =
            std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 500)(rng));
        s = v.Remove(/*recreate=*/true, pause, manifest);
        detail = fmt::format("after {} ms", pause.count());
      }
      if (!s.ok()) {
        ++errors;
        log(fmt::format("{} of volume {} FAILED: {}", fault, v.volume_id(), s.ToString()));
      } else {
        ++done[fault];
        log(fmt::format("{} volume {} {}", fault, v.volume_id(), detail));
      }
      continue;
    }
    if (now < next_append) {
      std::this_thread::sleep_for(std::min(next_append, next_fault) - now);
      continue;
    }
    next_append += append_period;
    if (now - next_append > std::chrono::seconds(1)) next_append = now;  // no bursts after a stall
    ChaosVolume& v = volumes[std::uniform_int_distribution<size_t>(0, volumes.size() - 1)(rng)];
    if (Status s = v.AppendOne(a.v.shape, manifest); !s.ok()) {
      ++errors;
      log(fmt::format("append to volume {} FAILED: {}", v.volume_id(), s.ToString()));
      continue;
    }
    ++appended;
  }
  // One closing append per volume, as a live volume server keeps writing: it completes records a
  // cut left dangling (the agent holds back `.idx` entries whose record is not all in the `.dat`).
  for (auto& v : volumes) {
    if (Status s = v.AppendOne(a.v.shape, manifest); !s.ok()) {
      ++errors;
      log(fmt::format("closing append to volume {} FAILED: {}", v.volume_id(), s.ToString()));
    } else {
      ++appended;
    }
  }
  nlohmann::json j;
  j["writer_seconds"] =
      std::round(std::chrono::duration<double>(Clock::now() - start).count() * 10) / 10;
  j["appended"] = appended;
  for (const auto& [fault, n] : done)
    j["faults"][fault] = n;
  j["errors"] = errors;
  for (const auto& v : volumes)
    j["live"][std::to_string(v.volume_id())] = v.live();
  std::printf("%s\n", j.dump().c_str());
  return errors == 0 ? 0 : 1;
}

// ---- one change to one volume ----------------------------------------------------------------

struct OneArgs {
  VolumeArgs v;
  uint64_t count = 1;
  double rate = 0;  // appends per second, 0: as fast as possible
  bool recreate = false;
};

int Append(const OneArgs& a) {
  auto manifest = Check(ManifestWriter::Open(a.v.manifest), "opening the manifest");
  ChaosVolume v = OpenVolume(a.v, a.v.vid);
  const auto start = Clock::now();
  for (uint64_t i = 0; i < a.count && !g_stop; ++i) {
    Check(v.AppendOne(a.v.shape, manifest), fmt::format("appending to volume {}", a.v.vid));
    if (a.rate > 0) {
      std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>((i + 1) / a.rate)));
    }
  }
  std::fprintf(stderr, "volume %u: %zu live needles, next needle id %llu\n", a.v.vid, v.live(),
               static_cast<unsigned long long>(v.next_needle_id()));
  return 0;
}

int OneChange(const std::string& what, const OneArgs& a) {
  auto manifest = Check(ManifestWriter::Open(a.v.manifest), "opening the manifest");
  ChaosVolume v = OpenVolume(a.v, a.v.vid);
  const std::string ctx = fmt::format("{} of volume {}", what, a.v.vid);
  if (what == "delete") {
    const size_t n = Check(v.DeleteRandom(a.count, manifest), ctx);
    std::fprintf(stderr, "volume %u: deleted %zu needles\n", a.v.vid, n);
  } else if (what == "vacuum") {
    Check(v.Vacuum(manifest), ctx);
  } else if (what == "truncate") {
    Check(v.TruncateLast(manifest), ctx);
  } else if (what == "remove") {
    Check(v.Remove(a.recreate, std::chrono::milliseconds(0), manifest), ctx);
  }
  return 0;
}

// ---- read ------------------------------------------------------------------------------------

struct ReadArgs {
  ReaderOptions o;
  double seconds = 10;
  int timeout_ms = 2000;
  int grace_ms = 2000;
  std::string transports = "tcp";
};

int Read(ReadArgs a) {
  a.o.duration = std::chrono::milliseconds(static_cast<int64_t>(a.seconds * 1000));
  a.o.timeout = std::chrono::milliseconds(a.timeout_ms);
  a.o.delete_grace = std::chrono::milliseconds(a.grace_ms);
  if (!a.transports.empty()) a.o.transports = a.transports;
  const ReaderCounts counts = RunReader(a.o, &g_stop);
  std::printf("%s\n", ToJson(a.o, counts).c_str());
  std::fflush(stdout);
  return counts.wrong_bytes > 0 ? 3 : 0;
}

int Verify(ReadArgs a) {
  a.o.timeout = std::chrono::milliseconds(a.timeout_ms);
  if (!a.transports.empty()) a.o.transports = a.transports;
  const VerifyCounts counts = RunVerify(a.o);
  std::printf("%s\n", ToJson(counts).c_str());
  std::fflush(stdout);
  return counts.passed() ? 0 : 3;
}

int Main(int argc, char** argv) {
  CLI::App app{"swrdma-volume-chaos: live volume changes and faults, and checking readers"};
  app.require_subcommand(1);
  int rc = 0;

  RunArgs run;
  auto* run_cmd = app.add_subcommand("run", "Append at a rate and apply faults in random order");
  AddVolumeArgs(run_cmd, run.v, false);
  run_cmd->add_option("--vids", run.vids, "Volume ids to write")->delimiter(',');
  run_cmd->add_option("--seconds", run.seconds, "How long")->capture_default_str();
  run_cmd->add_option("--rate", run.rate, "Appends per second (all volumes)")
      ->capture_default_str();
  run_cmd->add_option("--fault-every-ms", run.fault_every_ms, "Time between faults")
      ->check(CLI::Range(10, 3'600'000))
      ->capture_default_str();
  run_cmd->add_option("--faults", run.faults, "Faults to choose from")
      ->delimiter(',')
      ->check(CLI::IsMember({"delete", "vacuum", "truncate", "recreate"}));
  run_cmd->add_option("--delete-batch", run.delete_batch, "Most needles one delete fault takes")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  run_cmd->callback([&] { rc = Run(run); });

  OneArgs one;
  auto* append_cmd = app.add_subcommand("append", "Append needles to one volume (created if new)");
  AddVolumeArgs(append_cmd, one.v, true);
  append_cmd->add_option("--count", one.count, "Needles to append")->capture_default_str();
  append_cmd->add_option("--rate", one.rate, "Appends per second (0: as fast as possible)");
  append_cmd->callback([&] { rc = Append(one); });
  for (const char* what : {"delete", "vacuum", "truncate", "remove"}) {
    const std::string help =
        std::string(what) == "delete"     ? "Delete random live needles"
        : std::string(what) == "vacuum"   ? "Compact: live needles into revision + 1, renamed over"
        : std::string(what) == "truncate" ? "Cut the .dat in the middle of its last record"
                                          : "Remove the volume's files";
    auto* cmd = app.add_subcommand(what, help);
    AddVolumeArgs(cmd, one.v, true);
    if (std::string(what) == "delete") {
      cmd->add_option("--count", one.count, "Needles to delete")->capture_default_str();
    }
    if (std::string(what) == "remove") {
      cmd->add_flag("--recreate", one.recreate, "Create an empty volume with the same id after");
    }
    cmd->callback([&, what] { rc = OneChange(what, one); });
  }

  ReadArgs read;
  auto* read_cmd = app.add_subcommand("read", "Read random manifest fids and check every byte");
  read_cmd->add_option("--agent", read.o.agent_url, "Agent URL (http://HOST:PORT)")->required();
  read_cmd->add_option("--manifest", read.o.manifest, "Manifest the writer appends to")->required();
  read_cmd->add_option("--seconds", read.seconds, "How long")->capture_default_str();
  read_cmd->add_option("--transports", read.transports, "UCX_TLS of the client ('' for default)")
      ->capture_default_str();
  read_cmd->add_option("--timeout-ms", read.timeout_ms, "Client timeout")->capture_default_str();
  read_cmd
      ->add_option("--grace-ms", read.grace_ms,
                   "A gone needle may still be read this long after the manifest says so")
      ->capture_default_str();
  read_cmd->add_option("--batch", read.o.max_batch, "Most fids per batch")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  read_cmd
      ->add_option("--gone-fraction", read.o.gone_fraction,
                   "Share of reads aimed at deleted, cut or removed fids")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  read_cmd->add_option("--rate", read.o.max_reads_per_second, "Most reads per second (0: no cap)")
      ->capture_default_str();
  read_cmd->add_option("--seed", read.o.seed, "Seed of the fid choice")->capture_default_str();
  read_cmd->add_option("--name", read.o.name, "Name in the JSON line and the log")
      ->capture_default_str();
  read_cmd->callback([&] { rc = Read(read); });

  ReadArgs verify;
  auto* verify_cmd = app.add_subcommand(
      "verify", "Read every manifest fid once: live ones must read right, gone ones must fail");
  verify_cmd->add_option("--agent", verify.o.agent_url, "Agent URL (http://HOST:PORT)")->required();
  verify_cmd->add_option("--manifest", verify.o.manifest, "Manifest")->required();
  verify_cmd->add_option("--transports", verify.transports, "UCX_TLS of the client")
      ->capture_default_str();
  verify_cmd->add_option("--timeout-ms", verify.timeout_ms, "Client timeout")
      ->capture_default_str();
  verify_cmd->callback([&] { rc = Verify(verify); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const Failure& f) {
    std::fprintf(stderr, "swrdma-volume-chaos: %s\n", f.message.c_str());
    return f.code;
  }
  return rc;
}

}  // namespace
}  // namespace swrdma::chaos

int main(int argc, char** argv) {
  std::signal(SIGTERM, swrdma::chaos::OnSignal);
  std::signal(SIGINT, swrdma::chaos::OnSignal);
  try {
    return swrdma::chaos::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swrdma-volume-chaos: unexpected error: %s\n", e.what());
    return 1;
  }
}
