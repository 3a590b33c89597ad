#include "volume/idx_file.h"

#include <fstream>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/needle.h"
#include "tests/test_util.h"

namespace swrdma {
namespace {

// What a reader builds from an .idx: needle id -> live entry.
std::map<uint64_t, IdxEntry> Replay(std::span<const uint8_t> bytes, OffsetWidth w,
                                    IdxScanStats* stats = nullptr) {
  std::map<uint64_t, IdxEntry> live;
  IdxScanStats s = ScanIdx(bytes, w, [&](const IdxEntry& e) {
    if (e.is_deletion()) {
      live.erase(e.needle_id);
    } else {
      live[e.needle_id] = e;
    }
  });
  if (stats) *stats = s;
  return live;
}

void WriteFile(const std::filesystem::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

TEST(IdxFile, SixteenByteEntryLayout) {
  std::vector<uint8_t> out;
  EncodeIdxEntry({0x0102030405060708, 0x10 * 8, 0xabcd}, OffsetWidth::k4, out);
  EXPECT_EQ(out, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0x10, 0, 0, 0xab, 0xcd}));
  EXPECT_EQ(DecodeIdxEntry(out.data(), OffsetWidth::k4),
            (IdxEntry{0x0102030405060708, 0x80, 0xabcd}));
}

TEST(IdxFile, SeventeenByteEntryKeepsBits32To39InTheFifthByte) {
  // 0x3_0000_2714 units = byte offset 0x18_0001_38a0 (what 187_5byteoffset.idx holds).
  const IdxEntry e{0x671b905, 0x300002714ull * 8, 4194395};
  std::vector<uint8_t> out;
  EncodeIdxEntry(e, OffsetWidth::k5, out);
  ASSERT_EQ(out.size(), 17u);
  EXPECT_EQ(out, (std::vector<uint8_t>{0, 0, 0, 0, 0x06, 0x71, 0xb9, 0x05, 0x00, 0x00, 0x27, 0x14,
                                       0x03, 0x00, 0x40, 0x00, 0x5b}));
  EXPECT_EQ(DecodeIdxEntry(out.data(), OffsetWidth::k5), e);
  // Largest 40-bit offset.
  const IdxEntry max{7, ((uint64_t{1} << 40) - 1) * 8, 1};
  out.clear();
  EncodeIdxEntry(max, OffsetWidth::k5, out);
  EXPECT_EQ(DecodeIdxEntry(out.data(), OffsetWidth::k5), max);
}

TEST(IdxFile, LaterEntriesOverrideAndTombstonesDelete) {
  std::vector<uint8_t> idx;
  for (OffsetWidth w : {OffsetWidth::k4, OffsetWidth::k5}) {
    idx.clear();
    EncodeIdxEntry({1, 8, 100}, w, idx);
    EncodeIdxEntry({2, 200, 50}, w, idx);
    EncodeIdxEntry({3, 400, 60}, w, idx);
    EncodeIdxEntry({1, 800, 120}, w, idx);              // overwrite
    EncodeIdxEntry({2, 1000, kTombstoneSize}, w, idx);  // deletion as SeaweedFS writes it
    EncodeIdxEntry({3, 0, 60}, w, idx);                 // offset 0 also deletes
    EncodeIdxEntry({4, 1200, 0x80000000u}, w, idx);     // any negative int32 is a deletion
    EncodeIdxEntry({5, 1300 / 8 * 8, 10}, w, idx);
    IdxScanStats stats;
    auto live = Replay(idx, w, &stats);
    EXPECT_EQ(stats.entries, 8u);
    EXPECT_EQ(stats.deletions, 3u);
    EXPECT_EQ(stats.consumed_bytes, idx.size());
    EXPECT_EQ(stats.damaged_tail_bytes, 0u);
    ASSERT_EQ(live.size(), 2u);
    EXPECT_EQ(live.at(1), (IdxEntry{1, 800, 120}));
    EXPECT_EQ(live.at(5).size, 10u);
  }
}

TEST(IdxFile, DeletionPredicate) {
  EXPECT_TRUE((IdxEntry{1, 8, kTombstoneSize}).is_deletion());
  EXPECT_TRUE((IdxEntry{1, 0, 10}).is_deletion());
  EXPECT_TRUE((IdxEntry{1, 8, 0x80000000u}).is_deletion());
  EXPECT_FALSE((IdxEntry{1, 8, 0x7fffffffu}).is_deletion());
  EXPECT_FALSE((IdxEntry{1, 8, 0}).is_deletion());  // empty needle, still live
}

TEST(IdxFile, DamagedTailIsCountedNotVisited) {
  std::vector<uint8_t> idx;
  EncodeIdxEntry({1, 8, 100}, OffsetWidth::k4, idx);
  EncodeIdxEntry({2, 16, 100}, OffsetWidth::k4, idx);
  idx.resize(idx.size() + 7, 0xee);  // a half-written third entry
  IdxScanStats stats;
  auto live = Replay(idx, OffsetWidth::k4, &stats);
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_EQ(stats.consumed_bytes, 32u);
  EXPECT_EQ(stats.damaged_tail_bytes, 7u);
  EXPECT_EQ(live.size(), 2u);
  // Read as 17-byte entries, the same 39 bytes hold two whole entries and a 5-byte tail.
  stats = ScanIdx(idx, OffsetWidth::k5, [](const IdxEntry&) {});
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_EQ(stats.damaged_tail_bytes, 5u);
}

TEST(IdxFile, FileScanCrossesChunksAndContinuesFromAPosition) {
  testing::TempDir dir;
  for (OffsetWidth w : {OffsetWidth::k4, OffsetWidth::k5}) {
    const size_t es = IdxEntrySize(w);
    // More entries than one read chunk (64 Ki), with 5-byte offsets above 32 GiB for k5.
    const uint64_t n = 150'000;
    std::vector<uint8_t> idx;
    const uint64_t base = w == OffsetWidth::k5 ? (uint64_t{40} << 30) : 8;
    for (uint64_t i = 0; i < n; ++i)
      EncodeIdxEntry({i + 1, base + i * 64, 40}, w, idx);
    idx.resize(idx.size() + 3, 0);  // damaged tail
    const auto path = dir / (w == OffsetWidth::k5 ? "5.idx" : "4.idx");
    WriteFile(path, idx);

    uint64_t expect_id = 1;
    bool in_order = true;
    auto all = ScanIdxFile(path, w, 0, [&](const IdxEntry& e) {
      in_order &= e.needle_id == expect_id && e.offset == base + (expect_id - 1) * 64;
      ++expect_id;
    });
    ASSERT_TRUE(all) << all.error().ToString();
    EXPECT_TRUE(in_order);
    EXPECT_EQ(all->entries, n);
    EXPECT_EQ(all->consumed_bytes, n * es);
    EXPECT_EQ(all->damaged_tail_bytes, 3u);

    // Continue from entry 100'000: only the rest is visited.
    uint64_t first = 0, count = 0;
    auto rest = ScanIdxFile(path, w, 100'000 * es, [&](const IdxEntry& e) {
      if (count++ == 0) first = e.needle_id;
    });
    ASSERT_TRUE(rest);
    EXPECT_EQ(first, 100'001u);
    EXPECT_EQ(rest->entries, n - 100'000);
    EXPECT_EQ(rest->consumed_bytes, (n - 100'000) * es);

    // At the end: nothing to visit.
    auto at_end = ScanIdxFile(path, w, n * es, [](const IdxEntry&) { FAIL(); });
    ASSERT_TRUE(at_end);
    EXPECT_EQ(at_end->entries, 0u);
    EXPECT_EQ(at_end->damaged_tail_bytes, 3u);
  }
}

TEST(IdxFile, FileScanErrors) {
  testing::TempDir dir;
  const auto path = dir / "1.idx";
  std::vector<uint8_t> idx;
  EncodeIdxEntry({1, 8, 100}, OffsetWidth::k4, idx);
  WriteFile(path, idx);
  auto misaligned = ScanIdxFile(path, OffsetWidth::k4, 3, [](const IdxEntry&) {});
  ASSERT_FALSE(misaligned);
  EXPECT_EQ(misaligned.error().code(), Code::kInvalidArgument);
  auto past_end = ScanIdxFile(path, OffsetWidth::k4, 32, [](const IdxEntry&) {});
  ASSERT_FALSE(past_end);
  EXPECT_EQ(past_end.error().code(), Code::kInvalidArgument);
  auto missing = ScanIdxFile(dir / "2.idx", OffsetWidth::k4, 0, [](const IdxEntry&) {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kIOError);
  EXPECT_NE(missing.error().message().find("2.idx"), std::string::npos);
}

TEST(IdxFile, EmptyFileHasNoEntries) {
  testing::TempDir dir;
  WriteFile(dir / "1.idx", {});
  auto stats = ScanIdxFile(dir / "1.idx", OffsetWidth::k4, 0, [](const IdxEntry&) { FAIL(); });
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->entries, 0u);
  EXPECT_EQ(stats->damaged_tail_bytes, 0u);
}

}  // namespace
}  // namespace swrdma
