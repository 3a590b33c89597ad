// EC volume format pieces: LocateData against hand-computed layouts and weed's own
// ec_test.go cases, .vif parsing, .ecx lookup, .ecj parsing and discovery.
#include "volume/ec_volume.h"

#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "protocol/byte_order.h"
#include "tests/test_util.h"

namespace swrdma::ec {
namespace {

using SI = ShardInterval;

Layout Tiny(uint32_t data_shards, uint64_t shard_dat_size) {
  // Large blocks of 100 bytes, small of 10: every boundary is a few bytes away.
  return Layout{.large_block = 100,
                .small_block = 10,
                .data_shards = data_shards,
                .shard_dat_size = shard_dat_size};
}

TEST(EcLayout, ShardExtension) {
  EXPECT_EQ(ShardExtension(0), ".ec00");
  EXPECT_EQ(ShardExtension(9), ".ec09");
  EXPECT_EQ(ShardExtension(13), ".ec13");
  EXPECT_EQ(ShardExtension(31), ".ec31");
}

// shard_dat_size 250 -> 2 large rows (the large area is .dat bytes [0, 2000)), then small rows.
TEST(EcLayout, WithinOneBlock) {
  EXPECT_EQ(LocateData(Tiny(10, 250), 150, 20), (std::vector<SI>{{1, 50, 20}}));
  EXPECT_EQ(LocateData(Tiny(10, 250), 0, 100), (std::vector<SI>{{0, 0, 100}}));
  EXPECT_TRUE(LocateData(Tiny(10, 250), 150, 0).empty());
}

TEST(EcLayout, AcrossABlockBoundaryTwoShards) {
  EXPECT_EQ(LocateData(Tiny(10, 250), 190, 20), (std::vector<SI>{{1, 90, 10}, {2, 0, 10}}));
  // The same in the small area: small block 3 of small row 0 sits at shard offset 200.
  EXPECT_EQ(LocateData(Tiny(10, 250), 2035, 10), (std::vector<SI>{{3, 205, 5}, {4, 200, 5}}));
}

TEST(EcLayout, AcrossARowBoundaryBackToShardZero) {
  // Large block 9 (last of row 0) into block 10 = shard 0 of row 1 (shard offset 100).
  EXPECT_EQ(LocateData(Tiny(10, 250), 990, 20), (std::vector<SI>{{9, 90, 10}, {0, 100, 10}}));
  // Small block 9 of small row 0 into small row 1 (shard offset 200 + 10).
  EXPECT_EQ(LocateData(Tiny(10, 250), 2095, 10), (std::vector<SI>{{9, 205, 5}, {0, 210, 5}}));
}

TEST(EcLayout, FromTheLastLargeRowIntoTheSmallRows) {
  // Large block 19 is shard 9 of row 1; the small blocks start after 2 large blocks per shard.
  EXPECT_EQ(LocateData(Tiny(10, 250), 1995, 30),
            (std::vector<SI>{{9, 195, 5}, {0, 200, 10}, {1, 200, 10}, {2, 200, 5}}));
  // Starting exactly at the first small block.
  EXPECT_EQ(LocateData(Tiny(10, 250), 2000, 10), (std::vector<SI>{{0, 200, 10}}));
}

TEST(EcLayout, NoLargeRows) {
  // A volume smaller than one large row: all small blocks from shard offset 0.
  EXPECT_EQ(LocateData(Tiny(10, 99), 5, 30),
            (std::vector<SI>{{0, 5, 5}, {1, 0, 10}, {2, 0, 10}, {3, 0, 5}}));
}

TEST(EcLayout, OtherDataShardCounts) {
  // 6 data shards, one large row (600 bytes), then small rows of 6 x 10.
  EXPECT_EQ(LocateData(Tiny(6, 150), 550, 70),
            (std::vector<SI>{{5, 50, 50}, {0, 100, 10}, {1, 100, 10}}));
  // Small row boundary with 6 shards: small block 5 -> small row 1, shard 0.
  EXPECT_EQ(LocateData(Tiny(6, 150), 655, 10), (std::vector<SI>{{5, 105, 5}, {0, 110, 5}}));
  // 3 data shards, 2 large rows: block 3 is shard 0 of row 1.
  EXPECT_EQ(LocateData(Tiny(3, 200), 295, 10), (std::vector<SI>{{2, 95, 5}, {0, 100, 5}}));
}

TEST(EcLayout, DegenerateLayoutsGiveNothing) {
  EXPECT_TRUE(LocateData(Layout{.large_block = 0}, 0, 10).empty());
  EXPECT_TRUE(LocateData(Layout{.small_block = 0}, 0, 10).empty());
  EXPECT_TRUE(LocateData(Layout{.data_shards = 0}, 0, 10).empty());
}

// weed/storage/erasure_coding/ec_test.go, translated from (block index, inner offset) to
// (shard, shard offset) with ToShardIdAndOffset.
TEST(EcLayout, WeedEcTestCases) {
  constexpr uint64_t kGiB = uint64_t{1} << 30, kMiB = uint64_t{1} << 20;
  // TestLocateData: large 10000, small 100, shard size 10001 -> one large row; the first byte
  // after it is small block 0.
  const Layout tiny{.large_block = 10000, .small_block = 100, .shard_dat_size = 10001};
  EXPECT_EQ(LocateData(tiny, 10 * 10000, 1), (std::vector<SI>{{0, 10000, 1}}));
  // TestLocateData2: shard size 3 GiB - 1 (the .ecd-size-minus-1 fallback) -> 2 large rows.
  const Layout real{.shard_dat_size = 3 * kGiB - 1};
  EXPECT_EQ(LocateData(real, 21479557912, 4194339), (std::vector<SI>{{4, 2 * kGiB + 527128, 521448},
                                                                     {5, 2 * kGiB, kMiB},
                                                                     {6, 2 * kGiB, kMiB},
                                                                     {7, 2 * kGiB, kMiB},
                                                                     {8, 2 * kGiB, 527163}}));
  // TestLocateData3: small block 8876 = shard 6 of small row 887.
  EXPECT_EQ(LocateData(real, 30782909808, 112568),
            (std::vector<SI>{{6, 2 * kGiB + 887 * kMiB + 912752, 112568}}));
  // TestLocateData_ExactMultiple_Issue8947: shard size exactly 3 GiB -> 3 large rows; 20 GiB is
  // block 20 = shard 0 of large row 2.
  const Layout exact{.shard_dat_size = 3 * kGiB};
  EXPECT_EQ(LocateData(exact, 20 * kGiB, 1024), (std::vector<SI>{{0, 2 * kGiB, 1024}}));
}

// Where one .dat byte lives, straight from the encoder's row layout (the reference LocateData
// must agree with, byte by byte).
SI ByteHome(const Layout& l, uint64_t pos) {
  const uint64_t d = l.data_shards, large_rows = l.shard_dat_size / l.large_block;
  const uint64_t large_area = large_rows * l.large_block * d;
  if (pos < large_area) {
    const uint64_t row = pos / (l.large_block * d), in_row = pos % (l.large_block * d);
    return {static_cast<uint32_t>(in_row / l.large_block),
            row * l.large_block + in_row % l.large_block, 1};
  }
  pos -= large_area;
  const uint64_t row = pos / (l.small_block * d), in_row = pos % (l.small_block * d);
  return {static_cast<uint32_t>(in_row / l.small_block),
          large_rows * l.large_block + row * l.small_block + in_row % l.small_block, 1};
}

TEST(EcLayout, AgreesWithTheRowLayoutByteByByte) {
  std::mt19937_64 rng(7);
  for (const Layout& l :
       {Tiny(10, 250), Tiny(6, 150), Tiny(3, 37), Tiny(14, 1000),
        Layout{.large_block = 64, .small_block = 8, .data_shards = 5, .shard_dat_size = 200}}) {
    const uint64_t dat_size = l.shard_dat_size * l.data_shards + 500;
    for (int trial = 0; trial < 2000; ++trial) {
      const uint64_t offset = rng() % dat_size, size = 1 + rng() % 300;
      const std::vector<SI> got = LocateData(l, offset, size);
      uint64_t pos = offset;
      for (const SI& s : got) {
        ASSERT_GT(s.size, 0u);
        for (uint64_t k = 0; k < s.size; ++k, ++pos) {
          const SI home = ByteHome(l, pos);
          ASSERT_EQ(home.shard, s.shard) << "byte " << pos << " of [" << offset << ", +" << size;
          ASSERT_EQ(home.shard_offset, s.shard_offset + k) << "byte " << pos;
        }
      }
      ASSERT_EQ(pos, offset + size);
      // Adjacent pieces are never in the same shard contiguously (they would be one piece).
      for (size_t i = 1; i < got.size(); ++i) {
        EXPECT_FALSE(got[i].shard == got[i - 1].shard &&
                     got[i].shard_offset == got[i - 1].shard_offset + got[i - 1].size);
      }
    }
  }
}

TEST(EcVolumeInfo, WhatWeedWritesAfterEcEncode) {
  // SaveVolumeInfo: protojson with EmitUnpopulated, 64-bit integers as strings.
  const auto info = ParseEcVolumeInfo(R"({
  "files": [],
  "version": 3,
  "replication": "",
  "bytesOffset": 0,
  "datFileSize": "2590912",
  "expireAtSec": "1767225600",
  "readOnly": false,
  "ecShardConfig": {"dataShards": 10, "parityShards": 4, "encodeTsNs": "1765000000123456789"},
  "readOnlyCanDelete": false
})",
                                      OffsetWidth::k5);
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->version, 3);
  EXPECT_EQ(info->dat_file_size, 2590912u);
  EXPECT_EQ(info->expire_at_sec, 1767225600u);
  EXPECT_EQ(info->data_shards, 10u);
  EXPECT_EQ(info->parity_shards, 4u);
  EXPECT_EQ(info->encode_ts_ns, 1765000000123456789);
  EXPECT_EQ(info->offset_width, OffsetWidth::k5);  // bytesOffset 0: the fallback
}

TEST(EcVolumeInfo, NumbersProtoNamesAndCustomRatio) {
  const auto info = ParseEcVolumeInfo(
      R"({"version": "2", "dat_file_size": 123456, "bytes_offset": 5, "expire_at_sec": 9,
          "ec_shard_config": {"data_shards": "6", "parity_shards": 3, "encode_ts_ns": -5}})",
      OffsetWidth::k4);
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->version, 2);
  EXPECT_EQ(info->dat_file_size, 123456u);
  EXPECT_EQ(info->offset_width, OffsetWidth::k5);
  EXPECT_EQ(info->expire_at_sec, 9u);
  EXPECT_EQ(info->data_shards, 6u);
  EXPECT_EQ(info->parity_shards, 3u);
  EXPECT_EQ(info->encode_ts_ns, -5);
  // The pre-3.x names weed still reads (OldVersionVolumeInfo).
  const auto old = ParseEcVolumeInfo(R"({"BytesOffset": 4, "DestroyTime": "77"})", OffsetWidth::k5);
  ASSERT_TRUE(old);
  EXPECT_EQ(old->offset_width, OffsetWidth::k4);
  EXPECT_EQ(old->expire_at_sec, 77u);
}

TEST(EcVolumeInfo, MissingFieldsAndEmptyTextAreDefaults) {
  for (const char* text : {"", "  \n", "{}", R"({"ecShardConfig": null, "version": 0})"}) {
    const auto info = ParseEcVolumeInfo(text, OffsetWidth::k4);
    ASSERT_TRUE(info) << text << ": " << info.error().ToString();
    EXPECT_EQ(info->version, 3) << text;
    EXPECT_EQ(info->dat_file_size, 0u) << text;
    EXPECT_EQ(info->data_shards, kDefaultDataShards) << text;
    EXPECT_EQ(info->parity_shards, kDefaultParityShards) << text;
    EXPECT_EQ(info->offset_width, OffsetWidth::k4) << text;
    EXPECT_EQ(info->encode_ts_ns, 0) << text;
  }
  const auto odd =
      ParseEcVolumeInfo(R"({"bytesOffset": 8, "someFutureField": {"x": 1}})", OffsetWidth::k5);
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->offset_width, OffsetWidth::k5);  // neither 4 nor 5: the fallback
}

// As weed's NewEcVolume (late 2026): a config that is present but impossible is refused (the
// defaults would read the shards at the wrong offsets); only an absent config means 10+4.
TEST(EcVolumeInfo, ImpossibleShardCountsOrBlockSizesAreRefused) {
  for (const char* config :
       {R"({"dataShards": 0, "parityShards": 4})", R"({"dataShards": 10, "parityShards": 0})",
        R"({"dataShards": 10})", R"({"dataShards": 28, "parityShards": 5})", R"({})",
        R"({"dataShards": 10, "parityShards": 4, "blockSize": "-1048576"})",
        R"({"dataShards": 10, "parityShards": 4, "blockSize": 1000})"}) {
    const std::string text = std::string(R"({"ecShardConfig": )") + config + "}";
    const auto info = ParseEcVolumeInfo(text, OffsetWidth::k4);
    ASSERT_FALSE(info) << text;
    EXPECT_EQ(info.error().code(), Code::kCorruption) << text;
  }
  const auto none = ParseEcVolumeInfo(R"({"version": 3})", OffsetWidth::k4);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->data_shards, 10u);
  EXPECT_EQ(none->parity_shards, 4u);
  EXPECT_EQ(none->block_size, 0u);
  const auto max = ParseEcVolumeInfo(R"({"ecShardConfig": {"dataShards": 28, "parityShards": 4}})",
                                     OffsetWidth::k4);
  ASSERT_TRUE(max);
  EXPECT_EQ(max->data_shards, 28u);  // 32 in all is allowed
  // What weed writes since late 2026: the uniform layout's block size, as a string.
  const auto uniform = ParseEcVolumeInfo(
      R"({"datFileSize": "22000000", "ecShardConfig": {"dataShards": 10, "parityShards": 4,
          "blockSize": "3145728"}})",
      OffsetWidth::k4);
  ASSERT_TRUE(uniform) << uniform.error().ToString();
  EXPECT_EQ(uniform->block_size, 3u << 20);
  const Layout l = LayoutOf(*uniform, 0);
  EXPECT_EQ(l.large_block, 3u << 20);
  EXPECT_EQ(l.small_block, 3u << 20);
  EXPECT_EQ(l.shard_dat_size, 2'200'000u);
  EXPECT_EQ(UniformBlockSize(22'000'000, 10), 3u << 20);  // weed chose 3 MiB for 22 MB
  EXPECT_EQ(UniformBlockSize(8'400'000, 10), 1u << 20);
  EXPECT_EQ(UniformBlockSize(106'000'000, 10), 11u << 20);
  EXPECT_EQ(UniformBlockSize(0, 10), 1u << 20);
}

TEST(EcVolumeInfo, GarbageIsCorruption) {
  for (const char* text :
       {"not json", "[1, 2]", "42", R"({"version": "three"})", R"({"version": 300})",
        R"({"datFileSize": -1})", R"({"datFileSize": "12x"})", R"({"datFileSize": 1.5})",
        R"({"ecShardConfig": 7})", R"({"ecShardConfig": {"dataShards": -1}})",
        R"({"ecShardConfig": {"encodeTsNs": "9223372036854775808"}})", R"({"expireAtSec": true})",
        "{\"version\": 3"}) {
    const auto info = ParseEcVolumeInfo(text, OffsetWidth::k4);
    ASSERT_FALSE(info) << text;
    EXPECT_EQ(info.error().code(), Code::kCorruption) << text;
  }
}

std::vector<uint8_t> SortedIndex(OffsetWidth w, const std::vector<IdxEntry>& entries) {
  std::vector<uint8_t> out;
  for (const IdxEntry& e : entries)
    EncodeIdxEntry(e, w, out);
  return out;
}

TEST(EcIndex, FindInSortedIndex) {
  const std::vector<IdxEntry> entries = {
      {1, 8, 100}, {5, 64, 0xFFFFFFFF}, {6, 128, 0}, {9, 256, 42}, {0xFFFFFFFFFFFFFFF0, 512, 7}};
  for (OffsetWidth w : {OffsetWidth::k4, OffsetWidth::k5}) {
    const std::vector<uint8_t> ecx = SortedIndex(w, entries);
    for (const IdxEntry& e : entries) {
      EXPECT_EQ(FindInSortedIndex(ecx, w, e.needle_id), e) << e.needle_id;
    }
    // A tombstone is returned as stored; the caller decides it is deleted.
    EXPECT_TRUE(FindInSortedIndex(ecx, w, 5)->is_deletion());
    for (uint64_t absent : {uint64_t{0}, uint64_t{2}, uint64_t{7}, uint64_t{10}, UINT64_MAX}) {
      EXPECT_FALSE(FindInSortedIndex(ecx, w, absent)) << absent;
    }
    EXPECT_FALSE(FindInSortedIndex({}, w, 1));
    // A damaged tail (half an entry) is not an entry; the whole ones are still found.
    std::vector<uint8_t> damaged = ecx;
    damaged.resize(damaged.size() - 3);
    EXPECT_FALSE(FindInSortedIndex(damaged, w, 0xFFFFFFFFFFFFFFF0));
    EXPECT_EQ(FindInSortedIndex(damaged, w, 9), entries[3]);
  }
  // 5-byte offsets beyond 32 GiB.
  const IdxEntry big{77, uint64_t{123} << 32, 9};
  const std::vector<uint8_t> ecx = SortedIndex(OffsetWidth::k5, {{1, 8, 1}, big});
  EXPECT_EQ(FindInSortedIndex(ecx, OffsetWidth::k5, 77), big);
}

TEST(EcIndex, ParseEcj) {
  std::vector<uint8_t> bytes(8 * 3 + 5);
  StoreBe64(bytes.data(), 0x0102030405060708);
  StoreBe64(bytes.data() + 8, 1);
  StoreBe64(bytes.data() + 16, 1);  // deleted twice: kept as journaled
  const EcjContents ecj = ParseEcj(bytes);
  EXPECT_EQ(ecj.needle_ids, (std::vector<uint64_t>{0x0102030405060708, 1, 1}));
  EXPECT_EQ(ecj.consumed_bytes, 24u);
  EXPECT_EQ(ecj.damaged_tail_bytes, 5u);
  EXPECT_TRUE(ParseEcj({}).needle_ids.empty());
}

void Touch(const std::filesystem::path& p) {
  std::ofstream(p) << "x";
}

TEST(EcDiscovery, FindsEcxWithItsShards) {
  testing::TempDir dir("ec-discovery");
  Touch(dir / "7.ecx");
  Touch(dir / "7.ec00");
  Touch(dir / "7.ec13");
  Touch(dir / "7.vif");
  Touch(dir / "pics_3.ecx");
  Touch(dir / "pics_3.ecj");
  Touch(dir / "pics_3.ec05");
  Touch(dir / "9.ecx");        // no shards here: still listed
  Touch(dir / "7.ec5");        // junk: not a shard
  Touch(dir / "7.ec100");      // junk
  Touch(dir / "7.ec32");       // beyond 32 shards: warned
  Touch(dir / "x_y.ecx");      // not a volume name: warned
  Touch(dir / "11.ec01");      // shards without an .ecx: listed apart
  Touch(dir / "12.dat");       // a normal volume: not ours
  Touch(dir / "other_7.ecx");  // same id in another collection: duplicate, warned
  std::filesystem::create_directory(dir / "8.ecx");  // a directory: ignored

  const auto report = DiscoverEcVolumes(dir.path());
  ASSERT_TRUE(report) << report.error().ToString();
  ASSERT_EQ(report->volumes.size(), 3u);
  const EcVolumeFiles& v3 = report->volumes[0];
  EXPECT_EQ(v3.volume_id, 3u);
  EXPECT_EQ(v3.collection, "pics");
  EXPECT_EQ(v3.base_name(), "pics_3");
  EXPECT_EQ(v3.ecx, dir / "pics_3.ecx");
  EXPECT_EQ(v3.ecj, dir / "pics_3.ecj");
  EXPECT_FALSE(v3.vif);
  EXPECT_EQ(v3.shards, (std::map<uint32_t, std::filesystem::path>{{5, dir / "pics_3.ec05"}}));
  const EcVolumeFiles& v7 = report->volumes[1];
  EXPECT_EQ(v7.volume_id, 7u);
  EXPECT_EQ(v7.collection, "");      // "7.ecx" sorts before "other_7.ecx" and wins
  EXPECT_EQ(v7.ecj, dir / "7.ecj");  // not there yet: weed creates it on load
  EXPECT_EQ(v7.vif, dir / "7.vif");
  EXPECT_EQ(v7.shards,
            (std::map<uint32_t, std::filesystem::path>{{0, dir / "7.ec00"}, {13, dir / "7.ec13"}}));
  EXPECT_EQ(report->volumes[2].volume_id, 9u);
  EXPECT_TRUE(report->volumes[2].shards.empty());

  auto warned = [&](std::string_view needle) {
    for (const std::string& w : report->warnings) {
      if (w.find(needle) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(warned("7.ec32"));
  EXPECT_TRUE(warned("x_y.ecx"));
  EXPECT_TRUE(warned("duplicate volume id 7"));
  EXPECT_EQ(report->warnings.size(), 3u);
  ASSERT_EQ(report->without_ecx.size(), 1u);
  EXPECT_EQ(report->without_ecx[0].volume_id, 11u);
  EXPECT_TRUE(report->without_ecx[0].ecx.empty());
  EXPECT_EQ(report->without_ecx[0].shards,
            (std::map<uint32_t, std::filesystem::path>{{1, dir / "11.ec01"}}));
}

TEST(EcDiscovery, MissingDirectoryIsIoError) {
  const auto report = DiscoverEcVolumes("/nonexistent/swrdma-ec");
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code(), Code::kIOError);
}

}  // namespace
}  // namespace swrdma::ec
