// Reading `.idx` tails for the needle index: last-wins replay, held-back entries, partial tails.
#include "volume/idx_replay.h"

#include <fstream>
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace swrdma {
namespace {

std::map<uint64_t, IdxEntry> Model(const std::vector<IdxEntry>& entries) {
  std::map<uint64_t, IdxEntry> m;
  for (const IdxEntry& e : entries)
    m[e.needle_id] = e;
  return m;
}

void ExpectReplayMatchesModel(std::vector<IdxEntry> entries) {
  const auto model = Model(entries);
  ReplayLastWins(entries);
  ASSERT_EQ(entries.size(), model.size());
  size_t i = 0;
  for (const auto& [id, e] : model)
    EXPECT_EQ(entries[i++], e) << id;
}

// Random ids that need one, three and eight radix passes, with many repeats.
TEST(IdxReplay, RandomIdsLastEntryWinsSortedById) {
  std::mt19937_64 rng(42);
  for (uint64_t id_mask : {0xFFull, 0xFFFFFFull, ~0ull}) {
    std::vector<IdxEntry> entries;
    for (uint64_t i = 1; i <= 5000; ++i) {
      entries.push_back(
          {rng() & id_mask, i * 8, static_cast<uint32_t>(rng() % 3 == 0 ? kTombstoneSize : i)});
    }
    ExpectReplayMatchesModel(entries);
  }
}

// The usual shape: increasing ids, some overwritten or deleted later, one deleted before it was
// ever written, and the very first and last ids overridden.
TEST(IdxReplay, MostlyIncreasingIdsWithLateOverrides) {
  std::mt19937_64 rng(7);
  std::vector<IdxEntry> entries;
  uint64_t id = 100;
  entries.push_back({50, 8, kTombstoneSize});
  for (uint64_t i = 1; i <= 3000; ++i) {
    if (rng() % 20 == 0) {
      entries.push_back({100 + rng() % (id - 99), i * 8, rng() % 2 ? kTombstoneSize : 7});
    } else {
      entries.push_back({id += 1 + rng() % 3, i * 8, 9});
    }
  }
  entries.push_back({100, 99999 * 8, 1});
  entries.push_back({id, 100000 * 8, 2});
  entries.push_back({50, 100001 * 8, 3});
  ExpectReplayMatchesModel(entries);
}

TEST(IdxReplay, SortedAndEmptyInputs) {
  std::vector<IdxEntry> sorted = {{1, 8, 1}, {1, 16, 2}, {2, 24, 3}};
  ReplayLastWins(sorted);
  EXPECT_EQ(sorted, (std::vector<IdxEntry>{{1, 16, 2}, {2, 24, 3}}));
  std::vector<IdxEntry> empty;
  ReplayLastWins(empty);
  EXPECT_TRUE(empty.empty());
  std::vector<IdxEntry> descending = {{3, 8, 1}, {2, 16, 1}, {1, 24, 1}, {3, 32, 2}};
  ReplayLastWins(descending);
  EXPECT_EQ(descending, (std::vector<IdxEntry>{{1, 24, 1}, {2, 16, 1}, {3, 32, 2}}));
}

TEST(IdxReplay, RecordEnds) {
  const uint64_t len100 = NeedleRecordLength(100, NeedleVersion::kV3);
  EXPECT_EQ(IdxEntryRecordEnd({1, 8, 100}, NeedleVersion::kV3), 8 + len100);
  EXPECT_EQ(IdxEntryRecordEnd({1, 80, kTombstoneSize}, NeedleVersion::kV3),
            80 + NeedleRecordLength(0, NeedleVersion::kV3));
  EXPECT_EQ(IdxEntryRecordEnd({1, 0, kTombstoneSize}, NeedleVersion::kV3), 0u);
}

TEST(IdxReplay, HoldsBackFromTheFirstEntryPastTheDat) {
  const uint64_t len = NeedleRecordLength(100, NeedleVersion::kV3);
  IdxTail tail;
  tail.entries = {{1, 8, 100}, {2, 8 + len, 100}, {3, 0, kTombstoneSize}, {4, 8 + 2 * len, 100}};
  tail.applied_bytes = 4 * 16;
  // Room for the first record and half the second: the second and everything after wait.
  HoldBackUnwritten(tail, OffsetWidth::k4, 8 + len + len / 2, NeedleVersion::kV3);
  ASSERT_EQ(tail.entries.size(), 1u);
  EXPECT_EQ(tail.applied_bytes, 16u);
  EXPECT_EQ(tail.held_back_entries, 3u);
  EXPECT_EQ(tail.held_back_bytes, 48u);
  EXPECT_EQ(tail.record_end, 8 + len);
}

TEST(IdxReplay, DeletionsPastTheDatAreNotHeldBack) {
  const uint64_t len = NeedleRecordLength(100, NeedleVersion::kV3);
  IdxTail tail;
  // Needle 1 written, then deleted by a tombstone record that a truncation cut away.
  tail.entries = {{1, 8, 100}, {1, 8 + len, kTombstoneSize}, {2, 8 + len + 32, 100}};
  tail.applied_bytes = 3 * 16;
  HoldBackUnwritten(tail, OffsetWidth::k4, 8 + len, NeedleVersion::kV3);
  ASSERT_EQ(tail.entries.size(), 2u);  // the write and its deletion; needle 2 waits
  EXPECT_TRUE(tail.entries[1].is_deletion());
  EXPECT_EQ(tail.held_back_entries, 1u);
  EXPECT_EQ(tail.record_end, 8 + len);  // the cut-off tombstone is not a published record
}

// 4-byte offsets past 32 GiB: an entry moves to offset + 32 GiB only when the header at its
// stored offset has another size and the one 32 GiB further has its size (weed's retry).
TEST(IdxReplay, FourByteOffsetsPast32GiBAreFoundWhereWeedRetries) {
  constexpr uint64_t kWrap = kFourByteOffsetWrap;
  ASSERT_EQ(kWrap, uint64_t{32} << 30);
  const auto v = NeedleVersion::kV3;
  // Headers present in the imagined .dat: offset -> size field.
  std::map<uint64_t, uint32_t> headers = {
      {8, 100},            // needle 1, below the wrap
      {kWrap + 8, 200},    // needle 2, stored as 8 (wrapped onto needle 1's offset)
      {kWrap + 512, 50},   // needle 3, stored as 512: a hole below (size 0 there)
      {1024, 70},          // needle 4 at 1024, and needle 5 of the same size 32 GiB further:
      {kWrap + 1024, 70},  //   the stored offset matches, so it stays (weed reads it there)
  };
  int calls = 0;
  auto size_at = [&](uint64_t off) -> std::optional<uint32_t> {
    ++calls;
    auto it = headers.find(off);
    return it == headers.end() ? 0u : it->second;
  };
  const uint64_t dat_size = kWrap + 4096;
  std::vector<IdxEntry> entries = {{1, 8, 100},           {2, 8, 200},   {3, 512, 50},
                                   {4, 1024, 70},         {5, 1024, 70}, {6, 2048, 33},
                                   {2, 8, kTombstoneSize}};
  // Needle 6: neither place has its size; it stays (its reads fail the header check).
  EXPECT_EQ(UnwrapOffsets(entries, OffsetWidth::k4, dat_size, v, size_at), 2u);
  EXPECT_EQ(entries[0].offset, 8u);
  EXPECT_EQ(entries[1].offset, kWrap + 8);
  EXPECT_EQ(entries[2].offset, kWrap + 512);
  EXPECT_EQ(entries[3].offset, 1024u);
  EXPECT_EQ(entries[4].offset, 1024u);
  EXPECT_EQ(entries[5].offset, 2048u);
  EXPECT_EQ(entries[6].offset, 8u);  // deletions are never read, never moved

  // Records that would end past the .dat are not looked for there.
  std::vector<IdxEntry> late = {{2, 8, 200}};
  EXPECT_EQ(
      UnwrapOffsets(late, OffsetWidth::k4, kWrap + 8 + NeedleRecordLength(200, v) - 1, v, size_at),
      0u);
  EXPECT_EQ(late[0].offset, 8u);
  // Up to 32 GiB, and in 5-byte volumes, nothing is read at all.
  calls = 0;
  std::vector<IdxEntry> small = {{2, 8, 200}};
  EXPECT_EQ(UnwrapOffsets(small, OffsetWidth::k4, kWrap, v, size_at), 0u);
  EXPECT_EQ(UnwrapOffsets(small, OffsetWidth::k5, dat_size, v, size_at), 0u);
  EXPECT_EQ(calls, 0);
}

TEST(IdxReplay, ReadsWholeEntriesFromAnOffset) {
  testing::TempDir dir("idx-replay");
  std::vector<uint8_t> bytes;
  for (uint64_t n = 1; n <= 5; ++n)
    EncodeIdxEntry({n, n * 8, 10}, OffsetWidth::k5, bytes);
  bytes.resize(bytes.size() + 4);  // a writer mid-entry
  std::ofstream(dir / "1.idx", std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));

  uint64_t last_done = 0;
  auto tail = ReadIdxTail(dir / "1.idx", OffsetWidth::k5, 2 * 17,
                          [&](uint64_t done, uint64_t) { last_done = done; });
  ASSERT_TRUE(tail.has_value()) << tail.error().ToString();
  ASSERT_EQ(tail->entries.size(), 3u);
  EXPECT_EQ(tail->entries[0], (IdxEntry{3, 24, 10}));
  EXPECT_EQ(tail->applied_bytes, 3u * 17);
  EXPECT_EQ(tail->damaged_tail_bytes, 4u);
  EXPECT_EQ(last_done, 3u);

  auto missing = ReadIdxTail(dir / "2.idx", OffsetWidth::k4, 0);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::kIOError);
}

}  // namespace
}  // namespace swrdma
