// Runs the built `swrdma mkvolume` and reads back the volume it writes.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "protocol/needle.h"
#include "tests/test_util.h"
#include "volume/ec_volume.h"
#include "volume/idx_file.h"
#include "volume/superblock.h"
#include "volume/volume_files.h"
#include "volume/volume_generator.h"

namespace swrdma {
namespace {

const char* const kBinary = SWRDMA_BINARY_DIR "/client/swrdma";

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

RunResult RunSwrdma(const std::string& args) {
  RunResult r;
  const std::string cmd = std::string(kBinary) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::vector<uint8_t> ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

struct Counts {
  uint64_t live = 0;
  uint64_t deletions = 0;
  uint64_t gzipped = 0;
  uint64_t legacy = 0;
  std::vector<size_t> sizes;  // uncompressed data sizes of live needles
};

// Replays the volume's .idx and checks every live needle against GeneratedNeedleData(seed).
Counts CheckVolume(const VolumeFiles& v, uint64_t seed) {
  Counts c;
  auto width = VolumeOffsetWidth(v, OffsetWidth::k4);
  EXPECT_TRUE(width);
  const std::vector<uint8_t> dat = ReadAll(v.dat);
  auto sb = ParseSuperBlock(dat);
  EXPECT_TRUE(sb);
  if (!sb || !width) return c;
  std::map<uint64_t, IdxEntry> live;
  auto stats = ScanIdxFile(v.idx, *width, 0, [&](const IdxEntry& e) {
    if (e.is_deletion()) {
      live.erase(e.needle_id);
    } else {
      live[e.needle_id] = e;
    }
  });
  EXPECT_TRUE(stats);
  if (!stats) return c;
  EXPECT_EQ(stats->damaged_tail_bytes, 0u);
  c.deletions = stats->deletions;
  for (const auto& [id, e] : live) {
    auto rec = ParseNeedleRecord(std::span(dat).subspan(e.offset), sb->version);
    EXPECT_TRUE(rec);
    if (!rec) continue;
    auto form = VerifyNeedle(*rec, {id, rec->header.cookie, e.size});
    EXPECT_TRUE(form) << form.error().ToString();
    if (!form) continue;
    ++c.live;
    c.legacy += *form == CrcForm::kLegacy;
    std::vector<uint8_t> plain(rec->data.begin(), rec->data.end());
    if (rec->is_gzipped()) {
      ++c.gzipped;
      auto g = Gunzip(rec->data);
      EXPECT_TRUE(g);
      if (g) plain = *g;
    }
    c.sizes.push_back(plain.size());
    EXPECT_EQ(plain, GeneratedNeedleData(seed, id, plain.size(), rec->is_gzipped()))
        << "needle " << id;
  }
  return c;
}

TEST(MkvolumeCli, WritesAVolumeWithRandomSizesGzipAndDeletions) {
  testing::TempDir dir;
  const auto out = dir / "sub" / "dir";  // created by the command
  const RunResult r =
      RunSwrdma("mkvolume --dir " + out.string() +
                " --vid 3 --needles 200 --min 1 --max 8K --gzip-fraction 0.3 --delete-fraction 0.1 "
                "--collection my_coll --seed 5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("200 needles"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("my_coll_3.dat"), std::string::npos) << r.output;

  auto found = DiscoverVolumes(out);
  ASSERT_TRUE(found);
  ASSERT_EQ(found->volumes.size(), 1u);
  const VolumeFiles& v = found->volumes[0];
  EXPECT_EQ(v.volume_id, 3u);
  EXPECT_EQ(v.collection, "my_coll");
  EXPECT_TRUE(v.vif);
  const Counts c = CheckVolume(v, 5);
  EXPECT_EQ(c.live + c.deletions, 200u);
  EXPECT_GT(c.deletions, 0u);
  EXPECT_GT(c.gzipped, 0u);
  EXPECT_EQ(c.legacy, 0u);
  for (size_t s : c.sizes) {
    EXPECT_GE(s, 1u);
    EXPECT_LE(s, 8192u);
  }
}

TEST(MkvolumeCli, FixedSizeVersion2LegacyCrcFiveByteOffsets) {
  testing::TempDir dir;
  const RunResult r = RunSwrdma("mkvolume --dir " + dir.path().string() +
                                " --vid 9 --needles 50 --size 1K --version 2 --legacy-crc "
                                "--offset-bytes 5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  VolumeFiles v{9, "", dir / "9.dat", dir / "9.idx", dir / "9.vif"};
  EXPECT_EQ(VolumeOffsetWidth(v, OffsetWidth::k4).value(), OffsetWidth::k5);
  EXPECT_EQ(std::filesystem::file_size(v.idx), 50u * 17);
  const std::vector<uint8_t> dat = ReadAll(v.dat);
  ASSERT_GE(dat.size(), 8u);
  EXPECT_EQ(dat[0], 2);                // superblock version
  const Counts c = CheckVolume(v, 1);  // default seed
  EXPECT_EQ(c.live, 50u);
  EXPECT_EQ(c.legacy, 50u);
  EXPECT_EQ(c.gzipped, 0u);
  for (size_t s : c.sizes)
    EXPECT_EQ(s, 1024u);
}

// --ec: the volume as `weed shell ec.encode` leaves it: 14 shards, .ecx, .ecj, .vif, no .dat.
// Every live needle of the manifest is in the .ecx and its record reads back from the shards.
TEST(MkvolumeCli, EcWritesAnErasureCodedVolume) {
  testing::TempDir dir;
  const RunResult r = RunSwrdma(fmt::format(
      "mkvolume --dir {} --vid 12 --needles 60 --min 1 --max 300K --delete-fraction 0.2 --ec "
      "--fids {}/fids.tsv",
      dir.path().string(), dir.path().string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("erasure-coded 12"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "12.dat"));
  EXPECT_FALSE(std::filesystem::exists(dir / "12.idx"));
  auto found = ec::DiscoverEcVolumes(dir.path());
  ASSERT_TRUE(found);
  ASSERT_EQ(found->volumes.size(), 1u);
  const ec::EcVolumeFiles& v = found->volumes[0];
  EXPECT_EQ(v.shards.size(), 14u);
  ASSERT_TRUE(v.vif);
  const std::vector<uint8_t> vif = ReadAll(*v.vif);
  auto info = ec::ParseEcVolumeInfo(std::string(vif.begin(), vif.end()), OffsetWidth::k4);
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_GT(info->dat_file_size, 0u);
  EXPECT_GT(info->encode_ts_ns, 0);
  EXPECT_EQ(info->block_size, ec::UniformBlockSize(info->dat_file_size, 10));
  const ec::Layout layout = ec::LayoutOf(*info, 0);
  const std::vector<uint8_t> ecx = ReadAll(v.ecx);
  std::map<uint32_t, std::vector<uint8_t>> shards;
  for (const auto& [id, path] : v.shards)
    shards[id] = ReadAll(path);
  std::ifstream manifest(dir / "fids.tsv");
  std::string fid, state, form;
  uint64_t size = 0;
  size_t live = 0;
  while (manifest >> fid >> size >> state >> form) {
    const auto parsed = ParseFileId(fid);
    ASSERT_TRUE(parsed) << fid;
    const auto entry = ec::FindInSortedIndex(ecx, OffsetWidth::k4, parsed->needle_id);
    if (state != "live") {
      EXPECT_FALSE(entry) << fid << " was deleted before encoding: not in the .ecx";
      continue;
    }
    ASSERT_TRUE(entry) << fid;
    const uint64_t length = NeedleRecordLength(entry->size, NeedleVersion::kV3);
    std::vector<uint8_t> record;
    for (const auto& iv : ec::LocateData(layout, entry->offset, length)) {
      const auto& sh = shards.at(iv.shard);
      ASSERT_LE(iv.shard_offset + iv.size, sh.size());
      record.insert(record.end(), sh.begin() + static_cast<std::ptrdiff_t>(iv.shard_offset),
                    sh.begin() + static_cast<std::ptrdiff_t>(iv.shard_offset + iv.size));
    }
    auto rec = ParseNeedleRecord(record, NeedleVersion::kV3);
    ASSERT_TRUE(rec) << fid;
    EXPECT_EQ(rec->header.cookie, parsed->cookie) << fid;
    EXPECT_TRUE(VerifyNeedle(*rec, {parsed->needle_id, parsed->cookie, entry->size})) << fid;
    ++live;
  }
  EXPECT_GT(live, 30u);
}

TEST(MkvolumeCli, ReportsUsageErrorsAndRefusesToOverwrite) {
  testing::TempDir dir;
  const std::string d = " --dir " + dir.path().string();
  RunResult r = RunSwrdma("mkvolume" + d + " --vid 1 --needles 5");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--size"), std::string::npos) << r.output;

  r = RunSwrdma("mkvolume" + d + " --vid 1 --needles 5 --size 4X");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("4X"), std::string::npos) << r.output;

  r = RunSwrdma("mkvolume" + d + " --vid 1 --needles 5 --size 1K --version 4");
  EXPECT_NE(r.exit_code, 0);

  r = RunSwrdma("mkvolume" + d + " --vid 1 --needles 5 --size 1K --min 1");
  EXPECT_NE(r.exit_code, 0);

  r = RunSwrdma("mkvolume" + d + " --vid 1 --needles 5 --size 0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "1.dat"));

  r = RunSwrdma("mkvolume" + d + " --vid 1 --needles 5 --size 1K");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto size = std::filesystem::file_size(dir / "1.dat");
  r = RunSwrdma("mkvolume" + d + " --vid 1 --needles 5 --size 2K");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
  EXPECT_EQ(std::filesystem::file_size(dir / "1.dat"), size);

  r = RunSwrdma("");
  EXPECT_NE(r.exit_code, 0);  // a subcommand is required
  r = RunSwrdma("mkvolume --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--gzip-fraction"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace swrdma
