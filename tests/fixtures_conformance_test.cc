// The volume-file layer against real SeaweedFS files (../shared/fixtures, read-only): replaying
// their .idx, reading every live needle from the .dat and verifying it, and appending to a copy
// the way the fixture's own volume server did.
#include <fstream>
#include <iterator>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/gzip.h"
#include "tests/test_util.h"
#include "volume/idx_file.h"
#include "volume/superblock.h"
#include "volume/volume_files.h"
#include "volume/volume_writer.h"

namespace swrdma {
namespace {

std::vector<uint8_t> ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in) << p;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

struct Replayed {
  std::vector<IdxEntry> entries;
  std::map<uint64_t, IdxEntry> live;
  IdxScanStats stats;
};

Replayed Replay(const std::filesystem::path& idx, OffsetWidth w) {
  Replayed r;
  auto stats = ScanIdxFile(idx, w, 0, [&](const IdxEntry& e) {
    r.entries.push_back(e);
    if (e.is_deletion()) {
      r.live.erase(e.needle_id);
    } else {
      r.live[e.needle_id] = e;
    }
  });
  EXPECT_TRUE(stats) << stats.error().ToString();
  if (stats) r.stats = *stats;
  return r;
}

struct LiveCheck {
  uint64_t needles = 0;
  uint64_t gzipped = 0;
  uint64_t flags_0f = 0;
  uint64_t legacy = 0;
  uint64_t raw = 0;
  size_t largest = 0;
};

// Reads, parses and verifies every live needle; gunzips the compressed ones.
void CheckLiveNeedles(const std::vector<uint8_t>& dat, const SuperBlock& sb,
                      const std::map<uint64_t, IdxEntry>& live, LiveCheck& c) {
  for (const auto& [id, e] : live) {
    SCOPED_TRACE(::testing::Message() << "needle " << std::hex << id);
    ASSERT_EQ(e.offset % 8, 0u);
    ASSERT_LE(e.offset + NeedleRecordLength(e.size, sb.version), dat.size());
    auto rec = ParseNeedleRecord(std::span(dat).subspan(e.offset), sb.version);
    ASSERT_TRUE(rec) << rec.error().ToString();
    // The cookie comes from the record itself: the .idx does not hold it.
    auto form = VerifyNeedle(*rec, {id, rec->header.cookie, e.size});
    ASSERT_TRUE(form) << form.error().ToString();
    ++c.needles;
    c.legacy += *form == CrcForm::kLegacy;
    c.raw += *form == CrcForm::kRaw;
    c.flags_0f += rec->flags == 0x0f;
    c.largest = std::max(c.largest, rec->data.size());
    if (rec->is_gzipped()) {
      ++c.gzipped;
      auto plain = Gunzip(rec->data);
      ASSERT_TRUE(plain) << plain.error().ToString();
      EXPECT_FALSE(plain->empty());
    }
  }
}

TEST(FixturesConformance, Ec1VolumeAllLegacyCrc) {
  SWRDMA_REQUIRE_FIXTURES(fixtures);
  const std::vector<uint8_t> dat = ReadAll(fixtures / "ec_1.dat");
  auto sb = ParseSuperBlock(dat);
  ASSERT_TRUE(sb) << sb.error().ToString();
  EXPECT_EQ(sb->version, NeedleVersion::kV3);
  EXPECT_EQ(sb->data_start(), 8u);

  const Replayed r = Replay(fixtures / "ec_1.idx", OffsetWidth::k4);
  EXPECT_EQ(r.stats.entries, 298u);
  EXPECT_EQ(r.stats.deletions, 0u);
  EXPECT_EQ(r.stats.damaged_tail_bytes, 0u);
  ASSERT_EQ(r.live.size(), 298u);
  // File ids named in the README.
  for (auto [id, cookie] : {std::pair<uint64_t, uint32_t>{0x08, 0xccd23656},
                            std::pair<uint64_t, uint32_t>{0x07, 0x37ea8be4}}) {
    ASSERT_TRUE(r.live.contains(id));
    auto rec = ParseNeedleRecord(std::span(dat).subspan(r.live.at(id).offset), sb->version);
    ASSERT_TRUE(rec);
    EXPECT_TRUE(VerifyNeedle(*rec, {id, cookie, std::nullopt}));
  }

  LiveCheck c;
  CheckLiveNeedles(dat, *sb, r.live, c);
  EXPECT_EQ(c.needles, 298u);
  EXPECT_EQ(c.legacy, 298u);  // every stored CRC is the pre-3.09 Value() form
  EXPECT_EQ(c.flags_0f, 293u);
  EXPECT_GE(c.gzipped, 293u);
  EXPECT_GT(c.largest, 2'000'000u);
}

TEST(FixturesConformance, HealthyVolumeWritesAndDeletions) {
  SWRDMA_REQUIRE_FIXTURES(fixtures);
  const std::vector<uint8_t> dat = ReadAll(fixtures / "healthy_volume.dat");
  auto sb = ParseSuperBlock(dat);
  ASSERT_TRUE(sb);
  EXPECT_EQ(sb->version, NeedleVersion::kV3);
  EXPECT_EQ(sb->replica_placement_string(), "002");

  const Replayed r = Replay(fixtures / "healthy_volume.idx", OffsetWidth::k4);
  EXPECT_EQ(r.stats.entries, 27u);
  EXPECT_EQ(r.stats.deletions, 10u);
  EXPECT_EQ(r.live.size(), 7u);
  LiveCheck c;
  CheckLiveNeedles(dat, *sb, r.live, c);
  EXPECT_EQ(c.needles, 7u);
  EXPECT_EQ(c.raw, 7u);

  // Each deletion: written earlier, then an .idx entry with size 0xFFFFFFFF whose offset is that
  // of a size-0 record appended for the same id and cookie, which carries the deleted record's
  // checksum (the volume server appends the needle it read, data dropped). VolumeWriter::Delete
  // does the same.
  std::map<uint64_t, IdxEntry> written;
  uint64_t deletions = 0;
  for (const IdxEntry& e : r.entries) {
    if (!e.is_deletion()) {
      written[e.needle_id] = e;
      continue;
    }
    SCOPED_TRACE(::testing::Message() << "deleted needle " << std::hex << e.needle_id);
    ++deletions;
    EXPECT_EQ(e.size, kTombstoneSize);
    EXPECT_FALSE(r.live.contains(e.needle_id));
    ASSERT_TRUE(written.contains(e.needle_id));
    auto orig =
        ParseNeedleRecord(std::span(dat).subspan(written.at(e.needle_id).offset), sb->version);
    auto tomb = ParseNeedleRecord(std::span(dat).subspan(e.offset), sb->version);
    ASSERT_TRUE(orig && tomb);
    EXPECT_TRUE(tomb->is_tombstone());
    EXPECT_EQ(tomb->header.id, e.needle_id);
    EXPECT_EQ(tomb->header.cookie, orig->header.cookie);
    EXPECT_EQ(tomb->checksum, orig->checksum);
    EXPECT_GT(tomb->append_at_ns, orig->append_at_ns);
    // The deleted needle's bytes are still intact in the .dat.
    EXPECT_TRUE(VerifyNeedleChecksum(*orig));
  }
  EXPECT_EQ(deletions, 10u);
  EXPECT_EQ(written.size(), 17u);
}

TEST(FixturesConformance, WriterContinuesACopyOfHealthyVolumeLikeItsServer) {
  SWRDMA_REQUIRE_FIXTURES(fixtures);
  testing::TempDir dir;
  std::filesystem::copy_file(fixtures / "healthy_volume.dat", dir / "5.dat");
  std::filesystem::copy_file(fixtures / "healthy_volume.idx", dir / "5.idx");
  std::filesystem::permissions(dir / "5.dat", std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  std::filesystem::permissions(dir / "5.idx", std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  auto found = DiscoverVolumes(dir.path());
  ASSERT_TRUE(found);
  ASSERT_EQ(found->volumes.size(), 1u);
  const std::vector<uint8_t> original = ReadAll(fixtures / "healthy_volume.dat");
  auto live_rec = ParseNeedleRecord(std::span(original).subspan(0x1bde8 * 8), NeedleVersion::kV3);
  ASSERT_TRUE(live_rec);
  ASSERT_EQ(live_rec->header.id, 0x30u);
  uint64_t end = 0;
  {
    auto w = VolumeWriter::Open(found->volumes[0]);
    ASSERT_TRUE(w) << w.error().ToString();
    EXPECT_EQ(w->live_needles(), 7u);
    end = w->dat_size();
    EXPECT_EQ(end, original.size());
    // Needle 0x30 is live in the fixture; delete it as its volume server deleted the others.
    EXPECT_EQ(w->Delete(0x30, live_rec->header.cookie ^ 1).code(), Code::kNotFound);
    ASSERT_TRUE(w->Delete(0x30, live_rec->header.cookie).ok());
  }

  const std::vector<uint8_t> dat = ReadAll(dir / "5.dat");
  const std::vector<uint8_t> idx = ReadAll(dir / "5.idx");
  ASSERT_EQ(dat.size(), end + 32);
  ASSERT_EQ(idx.size(), 28u * 16);
  // Same layout as the fixture's own last tombstone (at 942824), apart from AppendAtNs.
  const uint64_t fixture_tomb = 942824;
  EXPECT_TRUE(std::equal(dat.begin() + fixture_tomb + 12, dat.begin() + fixture_tomb + 16,
                         dat.begin() + end + 12));  // size 0
  auto tomb = ParseNeedleRecord(std::span(dat).subspan(end), NeedleVersion::kV3);
  ASSERT_TRUE(tomb);
  EXPECT_EQ(tomb->header.id, 0x30u);
  EXPECT_EQ(tomb->header.cookie, live_rec->header.cookie);
  EXPECT_EQ(tomb->checksum, live_rec->checksum);
  const IdxEntry last = DecodeIdxEntry(idx.data() + 27 * 16, OffsetWidth::k4);
  EXPECT_EQ(last, (IdxEntry{0x30, end, kTombstoneSize}));
}

TEST(FixturesConformance, FiveByteOffsetIdx) {
  SWRDMA_REQUIRE_FIXTURES(fixtures);
  const Replayed r = Replay(fixtures / "187_5byteoffset.idx", OffsetWidth::k5);
  EXPECT_EQ(r.stats.entries, 60'527u);
  EXPECT_EQ(r.stats.deletions, 34u);
  EXPECT_EQ(r.stats.damaged_tail_bytes, 0u);
  EXPECT_EQ(r.stats.consumed_bytes, 60'527u * 17);
  EXPECT_EQ(r.live.size(), 60'459u);  // each deleted key had been written once before

  uint64_t highest = 0;
  for (const IdxEntry& e : r.entries)
    highest = std::max(highest, e.offset);
  EXPECT_EQ(highest, 131'318'251'352u);  // ~122.3 GiB: needs the fifth byte
  EXPECT_GT(highest, uint64_t{32} << 30);

  // The README says key 0x671b905 -> "byte offset 12884911892". The entry holds
  // 00 00 27 14 | 03, i.e. the 40-bit stored offset 0x3_0000_2714 = 12884911892, which is in
  // units of 8 bytes (it is not even a multiple of 8, so it cannot be a byte offset). The record
  // really starts at byte 12884911892 * 8 = 103079295136 (~96 GiB).
  ASSERT_TRUE(r.live.contains(0x671b905));
  const IdxEntry& e = r.live.at(0x671b905);
  EXPECT_EQ(e.offset / kIdxOffsetUnit, 12'884'911'892u);
  EXPECT_EQ(e.offset, 103'079'295'136u);
  EXPECT_EQ(e.size, 4'194'395u);

  // Read as 16-byte entries the same file makes no sense: it is not a multiple of 16.
  EXPECT_NE(std::filesystem::file_size(fixtures / "187_5byteoffset.idx") % 16, 0u);
}

TEST(FixturesConformance, DiscoveryOfTheFixturesFolder) {
  SWRDMA_REQUIRE_FIXTURES(fixtures);
  auto found = DiscoverVolumes(fixtures);
  ASSERT_TRUE(found);
  // ec_1.dat is volume 1 of collection "ec"; healthy_volume.dat has no volume id in its name.
  ASSERT_EQ(found->volumes.size(), 1u);
  EXPECT_EQ(found->volumes[0].volume_id, 1u);
  EXPECT_EQ(found->volumes[0].collection, "ec");
  ASSERT_EQ(found->warnings.size(), 1u);
  EXPECT_NE(found->warnings[0].find("healthy_volume.dat"), std::string::npos);
}

}  // namespace
}  // namespace swrdma
