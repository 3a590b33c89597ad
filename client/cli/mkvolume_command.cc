#include "client/cli/mkvolume_command.h"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "client/cli/command_error.h"
#include "protocol/byte_size.h"
#include "protocol/file_id.h"
#include "volume/ec_volume.h"
#include "volume/volume_generator.h"

namespace swrdma::cli {

namespace {

struct MkvolumeArgs {
  std::string dir;
  uint32_t vid = 0;
  uint64_t needles = 0;
  std::string size;
  std::string min_size;
  std::string max_size;
  int version = 3;
  double gzip_fraction = 0;
  double delete_fraction = 0;
  std::string collection;
  uint64_t seed = 1;
  bool legacy_crc = false;
  int offset_bytes = 4;
  bool ec = false;
  std::string fids_file;   // manifest of every needle, for demos and scripts
  std::string expect_dir;  // each live needle's data, for tests in other languages
};

uint64_t SizeOrThrow(const std::string& text, const char* flag) {
  auto v = ParseByteSize(text);
  if (!v) throw CommandError(fmt::format("{}: {}", flag, v.error().message()), kExitUsage);
  return *v;
}

GenerateOptions ToGenerateOptions(const MkvolumeArgs& a) {
  GenerateOptions o;
  o.dir = a.dir;
  o.volume_id = a.vid;
  o.collection = a.collection;
  o.needles = a.needles;
  if (!a.size.empty()) {
    o.min_size = o.max_size = SizeOrThrow(a.size, "--size");
  } else if (!a.min_size.empty() && !a.max_size.empty()) {
    o.min_size = SizeOrThrow(a.min_size, "--min");
    o.max_size = SizeOrThrow(a.max_size, "--max");
  } else {
    throw CommandError("give the needle data size: --size BYTES, or --min BYTES --max BYTES",
                       kExitUsage);
  }
  o.version = a.version == 2 ? NeedleVersion::kV2 : NeedleVersion::kV3;
  o.gzip_fraction = a.gzip_fraction;
  o.delete_fraction = a.delete_fraction;
  o.legacy_crc = a.legacy_crc;
  o.offset_width = a.offset_bytes == 5 ? OffsetWidth::k5 : OffsetWidth::k4;
  o.seed = a.seed;
  o.record_needles =
      !a.fids_file.empty() || !a.expect_dir.empty();  // otherwise only totals are printed
  return o;
}

// --expect-dir: the generator's own data of every live needle (uncompressed), one file per fid
// named like the fid, so tests outside C++ (Python) check reads byte for byte against it.
void WriteExpected(const MkvolumeArgs& args, const GenerateReport& report) {
  std::error_code ec;
  std::filesystem::create_directories(args.expect_dir, ec);
  if (ec) {
    throw CommandError(fmt::format("creating {}: {}", args.expect_dir, ec.message()), kExitFailure);
  }
  for (const auto& n : report.needles) {
    if (n.deleted) continue;
    const std::vector<uint8_t> data =
        GeneratedNeedleData(args.seed, n.fid.needle_id, n.size, n.gzipped);
    const std::string path = fmt::format("{}/{}", args.expect_dir, FormatFileId(n.fid));
    std::FILE* f = std::fopen(path.c_str(), "wb");
    const bool ok = f != nullptr && std::fwrite(data.data(), 1, data.size(), f) == data.size();
    if (f != nullptr && std::fclose(f) != 0 && ok) {
      throw CommandError(fmt::format("writing {}: {}", path, std::strerror(errno)), kExitFailure);
    }
    if (!ok) {
      throw CommandError(fmt::format("writing {}: {}", path, std::strerror(errno)), kExitFailure);
    }
  }
}

void RunMkvolume(const MkvolumeArgs& args) {
  GenerateOptions opts = ToGenerateOptions(args);
  std::error_code ec;
  std::filesystem::create_directories(opts.dir, ec);
  if (ec) {
    throw CommandError(fmt::format("creating directory {}: {}", opts.dir.string(), ec.message()),
                       kExitFailure);
  }

  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  Clock::time_point next_report = start + std::chrono::seconds(1);
  auto progress = [&](const GenerateProgress& p) {
    // Cheap enough per needle; prints at most once a second, only on runs longer than that.
    const Clock::time_point now = Clock::now();
    if (now < next_report) return;
    next_report = now + std::chrono::seconds(1);
    const double secs = std::chrono::duration<double>(now - start).count();
    std::fprintf(
        stderr, "mkvolume: %llu/%llu needles written, %llu deleted, .dat %s (%.0f MiB/s)\n",
        static_cast<unsigned long long>(p.written), static_cast<unsigned long long>(p.total),
        static_cast<unsigned long long>(p.deleted), HumanBytes(p.dat_size).c_str(),
        static_cast<double>(p.dat_size) / (1 << 20) / secs);
  };

  auto report = GenerateVolume(opts, progress);
  if (!report) throw CommandError(report.error());
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (!args.fids_file.empty()) {
    std::FILE* f = std::fopen(args.fids_file.c_str(), "w");
    if (!f) {
      throw CommandError(fmt::format("writing {}: {}", args.fids_file, std::strerror(errno)),
                         kExitFailure);
    }
    // fid, uncompressed size, live|deleted, gzip|plain: one needle a line, in write order.
    for (const auto& n : report->needles) {
      fmt::print(f, "{}\t{}\t{}\t{}\n", FormatFileId(n.fid), n.size, n.deleted ? "deleted" : "live",
                 n.gzipped ? "gzip" : "plain");
    }
    if (std::fclose(f) != 0) {
      throw CommandError(fmt::format("writing {}: {}", args.fids_file, std::strerror(errno)),
                         kExitFailure);
    }
  }
  if (!args.expect_dir.empty()) WriteExpected(args, *report);
  if (args.ec) {
    // As `weed shell ec.encode`: shards, .ecx, .ecj and .vif beside it, then the .dat and .idx
    // removed (a volume server serves the volume from its shards only).
    ec::EcEncodeOptions eo;
    eo.offset_width = args.offset_bytes == 5 ? OffsetWidth::k5 : OffsetWidth::k4;
    eo.encode_ts_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
    const std::string base = report->dat.stem().string();
    if (Status s = ec::EncodeEcVolume(report->dat, report->idx, opts.dir, base, eo); !s.ok()) {
      throw CommandError(s);
    }
    std::error_code rm;
    std::filesystem::remove(report->dat, rm);
    std::filesystem::remove(report->idx, rm);
    fmt::print(
        "erasure-coded {} into {}/{}.ec00..ec{:02} (+ .ecx .ecj .vif); .dat and .idx "
        "removed\n",
        base, opts.dir.string(), base, ec::kDefaultDataShards + ec::kDefaultParityShards - 1);
  }
  fmt::print(
      "created {}: {} needles ({} gzipped, {} deleted, {} live), data {}, stored {}, "
      ".dat {}, .idx {} B, {:.2f} s\n",
      report->dat.string(), report->written, report->gzipped, report->deleted,
      report->written - report->deleted, HumanBytes(report->data_bytes),
      HumanBytes(report->stored_bytes), HumanBytes(report->dat_size), report->idx_size, secs);
}

}  // namespace

void AddMkvolumeCommand(CLI::App& app) {
  auto args = std::make_shared<MkvolumeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "mkvolume",
      "Write a synthetic SeaweedFS volume (<dir>/[<collection>_]<vid>.dat/.idx/.vif) with "
      "deterministic content, as a volume server would");
  cmd->add_option("--dir", args->dir, "Directory to write the volume into (created if missing)")
      ->required();
  cmd->add_option("--vid", args->vid, "Volume id")->required();
  cmd->add_option("--needles", args->needles, "Number of needles to write")->required();
  CLI::Option* size =
      cmd->add_option("--size", args->size, "Fixed data size of every needle, e.g. 4K, 1M");
  CLI::Option* min = cmd->add_option("--min", args->min_size, "Smallest data size (with --max)");
  CLI::Option* max = cmd->add_option("--max", args->max_size, "Largest data size (with --min)");
  size->excludes(min)->excludes(max);
  min->needs(max);
  max->needs(min);
  cmd->add_option("--version", args->version, "Needle version")
      ->check(CLI::IsMember({2, 3}))
      ->capture_default_str();
  cmd->add_option("--gzip-fraction", args->gzip_fraction,
                  "Share of needles stored gzip-compressed (text-like data)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--delete-fraction", args->delete_fraction,
                  "Share of needles deleted after writing")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--collection", args->collection, "Collection name (file prefix)");
  cmd->add_option("--seed", args->seed, "Seed of the deterministic content")->capture_default_str();
  cmd->add_flag("--legacy-crc", args->legacy_crc, "Store checksums in the pre-3.09 Value() form");
  cmd->add_option("--offset-bytes", args->offset_bytes, ".idx offset width (5: large volumes)")
      ->check(CLI::IsMember({4, 5}))
      ->capture_default_str();
  cmd->add_flag("--ec", args->ec,
                "Then erasure-code it as `weed shell ec.encode` does (10+4 shards, .ecx, .ecj, "
                ".vif; the .dat and .idx removed)");
  cmd->add_option("--fids", args->fids_file,
                  "Write a manifest of every needle to FILE: fid, size, live|deleted, gzip|plain");
  cmd->add_option("--expect-dir", args->expect_dir,
                  "Write each live needle's data (uncompressed) to DIR/<fid>, for tests");
  cmd->callback([args] { RunMkvolume(*args); });
}

}  // namespace swrdma::cli
