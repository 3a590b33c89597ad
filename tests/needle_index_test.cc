// The RocksDB needle index against volumes written byte by byte here (superblock, needle records,
// .idx entries), so every awkward state a volume server can leave behind is reproducible: partial
// .idx entries, entries ahead of their data, vacuumed (replaced) files.
#include "index/needle_index.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "index/lookup_cache.h"
#include "protocol/needle.h"
#include "tests/test_util.h"
#include "volume/idx_file.h"
#include "volume/superblock.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

void AppendFile(const fs::path& p, std::span<const uint8_t> bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::app);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << p;
}

// A v3 volume written the way a volume server writes it: record into .dat, then its .idx entry.
// Keeps the replayed model (needle id -> last entry) to check the index against.
class RawVolume {
 public:
  RawVolume(fs::path dir, uint32_t vid, uint16_t compaction_revision = 0)
      : dir_(std::move(dir)), vid_(vid) {
    Recreate(compaction_revision);
  }

  // New files under the same names, renamed into place as a vacuum does (so new inodes).
  void Recreate(uint16_t compaction_revision) {
    SuperBlock sb;
    sb.compaction_revision = compaction_revision;
    const std::vector<uint8_t> head = EncodeSuperBlock(sb);
    const fs::path tmp_dat = dir_ / "vacuum.cpd", tmp_idx = dir_ / "vacuum.cpx";
    fs::remove(tmp_dat);
    fs::remove(tmp_idx);
    AppendFile(tmp_dat, head);
    AppendFile(tmp_idx, {});
    fs::rename(tmp_dat, files().dat);
    fs::rename(tmp_idx, files().idx);
    dat_size_ = head.size();
    model_.clear();
  }

  std::vector<uint8_t> Record(uint64_t nid, size_t data_size) const {
    std::vector<uint8_t> data(data_size, static_cast<uint8_t>(nid));
    NeedleSpec spec;
    spec.id = nid;
    spec.cookie = Cookie(nid);
    spec.data = data;
    std::vector<uint8_t> out;
    EXPECT_TRUE(EncodeNeedle(spec, NeedleVersion::kV3, out).ok());
    return out;
  }

  // Appends a needle (record then entry) and returns its entry.
  IdxEntry Put(uint64_t nid, size_t data_size = 100) {
    const std::vector<uint8_t> rec = Record(nid, data_size);
    IdxEntry e{nid, dat_size_, HeaderSize(rec)};
    AppendDat(rec);
    AppendEntry(e);
    return e;
  }

  // Appends a size-0 tombstone record and a deletion entry pointing at it.
  IdxEntry Delete(uint64_t nid) {
    const std::vector<uint8_t> rec = Record(nid, 0);
    IdxEntry e{nid, dat_size_, kTombstoneSize};
    AppendDat(rec);
    AppendEntry(e);
    return e;
  }

  void AppendDat(std::span<const uint8_t> bytes) {
    AppendFile(files().dat, bytes);
    dat_size_ += bytes.size();
  }
  void AppendEntry(const IdxEntry& e) {
    AppendIdxBytes(Encode(e));
    model_[e.needle_id] = e;
  }
  void AppendIdxBytes(std::span<const uint8_t> bytes) { AppendFile(files().idx, bytes); }
  static std::vector<uint8_t> Encode(const IdxEntry& e) {
    std::vector<uint8_t> out;
    EncodeIdxEntry(e, OffsetWidth::k4, out);
    return out;
  }

  static uint32_t Cookie(uint64_t nid) { return 0xC0000000u | static_cast<uint32_t>(nid); }
  static uint32_t HeaderSize(std::span<const uint8_t> rec) {
    return (uint32_t{rec[12]} << 24) | (uint32_t{rec[13]} << 16) | (uint32_t{rec[14]} << 8) |
           rec[15];
  }

  VolumeFiles files() const {
    VolumeFiles f;
    f.volume_id = vid_;
    f.dat = dir_ / (std::to_string(vid_) + ".dat");
    f.idx = dir_ / (std::to_string(vid_) + ".idx");
    return f;
  }
  uint64_t dat_size() const { return dat_size_; }
  uint64_t idx_size() const { return fs::file_size(files().idx); }
  const std::map<uint64_t, IdxEntry>& model() const { return model_; }
  uint64_t live() const {
    return std::ranges::count_if(model_, [](auto& kv) { return !kv.second.is_deletion(); });
  }
  uint64_t deleted() const { return model_.size() - live(); }

 private:
  fs::path dir_;
  uint32_t vid_;
  uint64_t dat_size_ = 0;
  std::map<uint64_t, IdxEntry> model_;
};

std::unique_ptr<NeedleIndex> OpenIndex(const fs::path& path, bool ingest) {
  NeedleIndexOptions o;
  // Both ways of publishing a rebuild: one ingested SST file, or one WriteBatch.
  o.ingest_min_entries = ingest ? 1 : UINT64_MAX;
  o.tail_batch_entries = 3;  // several tail batches even for small tails
  auto idx = NeedleIndex::Open(path, o);
  EXPECT_TRUE(idx.has_value()) << idx.error().ToString();
  return idx ? std::move(*idx) : nullptr;
}

SyncResult Sync(NeedleIndex& index, const VolumeFiles& f) {
  auto r = index.SyncVolume(f);
  EXPECT_TRUE(r.has_value()) << r.error().ToString();
  return r ? *r : SyncResult{};
}

NeedleLookup Find(const NeedleIndex& index, uint32_t vid, uint64_t nid) {
  auto r = index.Lookup(vid, nid);
  EXPECT_TRUE(r.has_value()) << r.error().ToString();
  return r ? *r : NeedleLookup{};
}

// Every needle of the model answers as the model says, under `generation`.
void ExpectMatchesModel(const NeedleIndex& index, const RawVolume& v, uint32_t vid,
                        uint64_t generation) {
  for (const auto& [nid, e] : v.model()) {
    SCOPED_TRACE(::testing::Message() << "needle " << nid);
    const NeedleLookup got = Find(index, vid, nid);
    if (e.is_deletion()) {
      EXPECT_EQ(got.outcome, LookupOutcome::kDeleted);
    } else {
      ASSERT_EQ(got.outcome, LookupOutcome::kFound);
      EXPECT_EQ(got.location.offset, e.offset);
      EXPECT_EQ(got.location.size, e.size);
    }
    EXPECT_EQ(got.location.generation, generation);
  }
}

class NeedleIndexTest : public ::testing::TestWithParam<bool> {
 protected:
  bool ingest() const { return GetParam(); }
  TempDir dir_{"needle-index"};
};

TEST_P(NeedleIndexTest, BuildsAndAnswersFoundDeletedUnknown) {
  RawVolume v(dir_.path(), 7);
  const IdxEntry first = v.Put(1);
  v.Put(2, 50);
  v.Put(3);
  const IdxEntry second = v.Put(2, 300);  // overrides the first write of needle 2
  v.Delete(3);
  v.Put(0xFFFFFFFFFFFFull, 10);

  auto index = OpenIndex(dir_ / "db", ingest());
  const SyncResult r = Sync(*index, v.files());
  EXPECT_EQ(r.action, SyncAction::kRebuilt);
  EXPECT_EQ(r.rebuild_reason, "new volume");
  EXPECT_EQ(r.entries_applied, 6u);
  EXPECT_EQ(r.state.live, 3u);
  EXPECT_EQ(r.state.deleted, 1u);
  EXPECT_EQ(r.state.idx_applied, v.idx_size());
  EXPECT_EQ(r.state.published_end, v.dat_size());
  EXPECT_GT(r.state.generation, 0u);

  NeedleLookup one = Find(*index, 7, 1);
  ASSERT_EQ(one.outcome, LookupOutcome::kFound);
  EXPECT_EQ(one.location.offset, first.offset);
  EXPECT_EQ(one.location.offset, 8u);  // right after the superblock
  EXPECT_EQ(one.location.size, first.size);
  EXPECT_EQ(one.location.cookie, 0u);  // .idx does not carry cookies
  EXPECT_EQ(one.location.generation, r.state.generation);
  EXPECT_EQ(Find(*index, 7, 2).location.offset, second.offset);
  EXPECT_EQ(Find(*index, 7, 2).location.size, second.size);
  EXPECT_EQ(Find(*index, 7, 3).outcome, LookupOutcome::kDeleted);
  EXPECT_EQ(Find(*index, 7, 4).outcome, LookupOutcome::kUnknownNeedle);
  EXPECT_EQ(Find(*index, 8, 1).outcome, LookupOutcome::kUnknownVolume);
  EXPECT_EQ(Find(*index, 6, 1).outcome, LookupOutcome::kUnknownVolume);
  ExpectMatchesModel(*index, v, 7, r.state.generation);

  // Nothing changed: nothing to do.
  const SyncResult again = Sync(*index, v.files());
  EXPECT_EQ(again.action, SyncAction::kUpToDate);
  EXPECT_EQ(again.state, r.state);
}

TEST_P(NeedleIndexTest, LookupManyAgreesWithLookup) {
  RawVolume a(dir_.path(), 1), b(dir_.path(), 2);
  for (uint64_t n = 1; n <= 20; ++n)
    a.Put(n, n);
  for (uint64_t n = 5; n <= 10; ++n)
    b.Put(n);
  a.Delete(4);
  auto index = OpenIndex(dir_ / "db", ingest());
  Sync(*index, a.files());
  Sync(*index, b.files());

  std::vector<NeedleKey> keys;
  for (uint32_t vid : {2u, 1u, 3u}) {
    for (uint64_t n : {7ull, 4ull, 1ull, 30ull, 20ull})
      keys.push_back({vid, n});
  }
  auto many = index->LookupMany(keys);
  ASSERT_TRUE(many.has_value()) << many.error().ToString();
  ASSERT_EQ(many->size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const NeedleLookup one = Find(*index, keys[i].volume_id, keys[i].needle_id);
    EXPECT_EQ((*many)[i].outcome, one.outcome) << i;
    EXPECT_EQ((*many)[i].location, one.location) << i;
  }
  EXPECT_EQ((*many)[1].outcome, LookupOutcome::kUnknownNeedle);   // volume 2, needle 4
  EXPECT_EQ((*many)[6].outcome, LookupOutcome::kDeleted);         // volume 1, needle 4
  EXPECT_EQ((*many)[10].outcome, LookupOutcome::kUnknownVolume);  // volume 3
  EXPECT_TRUE(index->LookupMany({})->empty());
}

TEST_P(NeedleIndexTest, RestartAppliesOnlyTheTailAndEqualsAFreshBuild) {
  RawVolume v(dir_.path(), 3);
  for (uint64_t n = 1; n <= 10; ++n)
    v.Put(n, 10 * n);
  v.Delete(5);
  uint64_t generation = 0;
  {
    auto index = OpenIndex(dir_ / "db", ingest());
    generation = Sync(*index, v.files()).state.generation;
  }
  // While the agent was down: new needles, an overwrite, deletions (of a live needle, of the
  // already deleted one, of one never written), and a needle deleted then written again.
  v.Put(11);
  v.Put(2, 999);
  v.Delete(7);
  v.Delete(5);
  v.Delete(40);
  v.Put(5, 17);
  v.Put(12);
  const uint64_t appended = 7;

  auto index = OpenIndex(dir_ / "db", ingest());
  const SyncResult tail = Sync(*index, v.files());
  EXPECT_EQ(tail.action, SyncAction::kAppliedTail);
  EXPECT_EQ(tail.entries_applied, appended);
  EXPECT_EQ(tail.state.generation, generation);
  EXPECT_EQ(tail.state.idx_applied, v.idx_size());
  EXPECT_EQ(tail.state.live, v.live());
  EXPECT_EQ(tail.state.deleted, v.deleted());
  ExpectMatchesModel(*index, v, 3, generation);

  auto fresh = OpenIndex(dir_ / "fresh-db", ingest());
  const SyncResult built = Sync(*fresh, v.files());
  EXPECT_EQ(built.action, SyncAction::kRebuilt);
  VolumeState a = tail.state, b = built.state;
  a.generation = b.generation = 0;
  EXPECT_EQ(a, b);
  for (uint64_t n = 0; n <= 50; ++n) {
    NeedleLookup x = Find(*index, 3, n), y = Find(*fresh, 3, n);
    EXPECT_EQ(x.outcome, y.outcome) << n;
    x.location.generation = y.location.generation = 0;
    EXPECT_EQ(x.location, y.location) << n;
  }
}

TEST_P(NeedleIndexTest, ReplacedDatRebuildsUnderANewGeneration) {
  RawVolume v(dir_.path(), 9, /*compaction_revision=*/4);
  for (uint64_t n = 1; n <= 6; ++n)
    v.Put(n, 64);
  v.Delete(2);
  auto index = OpenIndex(dir_ / "db", ingest());
  const SyncResult before = Sync(*index, v.files());

  // Vacuum: new .dat/.idx renamed over the old ones, revision + 1, live needles only, moved.
  v.Recreate(5);
  for (uint64_t n : {6, 5, 3, 1})
    v.Put(n, 64);
  const SyncResult after = Sync(*index, v.files());
  EXPECT_EQ(after.action, SyncAction::kRebuilt);
  EXPECT_NE(after.rebuild_reason.find("replaced"), std::string::npos) << after.rebuild_reason;
  EXPECT_GT(after.state.generation, before.state.generation);
  EXPECT_EQ(after.state.compaction_revision, 5);
  EXPECT_EQ(after.state.live, 4u);
  EXPECT_EQ(after.state.deleted, 0u);
  ExpectMatchesModel(*index, v, 9, after.state.generation);
  EXPECT_EQ(Find(*index, 9, 2).outcome, LookupOutcome::kUnknownNeedle);  // vacuumed away
  EXPECT_EQ(Find(*index, 9, 4).outcome, LookupOutcome::kUnknownNeedle);
}

// A rebuild written as several SST files (one per build thread) must delete every old key,
// also those between the files' needle id ranges, and publish all files at once.
TEST(NeedleIndexParallelBuild, SeveralFilesReplaceEveryOldKey) {
  TempDir dir("needle-index");
  RawVolume v(dir.path(), 21);
  for (uint64_t n = 1; n <= 200; ++n)
    v.Put(n, n % 50 + 1);
  NeedleIndexOptions o;
  o.ingest_min_entries = 1;
  o.build_threads = 4;
  o.min_entries_per_build_thread = 10;
  auto index = NeedleIndex::Open(dir / "db", o);
  ASSERT_TRUE(index.has_value()) << index.error().ToString();
  const SyncResult first = Sync(**index, v.files());
  ExpectMatchesModel(**index, v, 21, first.state.generation);

  // Vacuumed: only the even ids survive, at new offsets; odd ids fall between the new files'
  // ranges (each file starts at an even id) or inside them.
  v.Recreate(1);
  for (uint64_t n = 2; n <= 200; n += 2)
    v.Put(n, 3);
  v.Delete(100);
  const SyncResult second = Sync(**index, v.files());
  EXPECT_EQ(second.action, SyncAction::kRebuilt);
  EXPECT_EQ(second.state.live, 99u);
  EXPECT_EQ(second.state.deleted, 1u);
  ExpectMatchesModel(**index, v, 21, second.state.generation);
  for (uint64_t n = 1; n <= 201; n += 2) {
    EXPECT_EQ(Find(**index, 21, n).outcome, LookupOutcome::kUnknownNeedle) << n;
  }
  EXPECT_EQ((*index)->GetVolume(21)->generation, second.state.generation);
  EXPECT_EQ((*index)->ListVolumes()->size(), 1u);
}

TEST_P(NeedleIndexTest, CompactionRevisionOrShrunkIdxRebuilds) {
  RawVolume v(dir_.path(), 4, 1);
  for (uint64_t n = 1; n <= 4; ++n)
    v.Put(n);
  auto index = OpenIndex(dir_ / "db", ingest());
  const uint64_t g1 = Sync(*index, v.files()).state.generation;

  // Same inode, new revision in the superblock (bytes 4..5).
  {
    std::fstream f(v.files().dat, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(5);
    f.put(2);
  }
  const SyncResult r2 = Sync(*index, v.files());
  EXPECT_EQ(r2.action, SyncAction::kRebuilt);
  EXPECT_EQ(r2.rebuild_reason, "compaction revision 1 -> 2");
  EXPECT_GT(r2.state.generation, g1);
  ExpectMatchesModel(*index, v, 4, r2.state.generation);

  // The .idx cut back below the watermark (same inode).
  fs::resize_file(v.files().idx, 2 * IdxEntrySize(OffsetWidth::k4));
  const SyncResult r3 = Sync(*index, v.files());
  EXPECT_EQ(r3.action, SyncAction::kRebuilt);
  EXPECT_NE(r3.rebuild_reason.find(".idx shrank"), std::string::npos) << r3.rebuild_reason;
  EXPECT_EQ(r3.state.live, 2u);
  EXPECT_EQ(Find(*index, 4, 3).outcome, LookupOutcome::kUnknownNeedle);
  EXPECT_EQ(Find(*index, 4, 2).outcome, LookupOutcome::kFound);
}

TEST_P(NeedleIndexTest, PartialTrailingEntryWaitsForTheNextSync) {
  RawVolume v(dir_.path(), 5);
  for (uint64_t n = 1; n <= 3; ++n)
    v.Put(n);
  const std::vector<uint8_t> rec = v.Record(4, 100);
  const IdxEntry fourth{4, v.dat_size(), RawVolume::HeaderSize(rec)};
  v.AppendDat(rec);
  const std::vector<uint8_t> bytes = RawVolume::Encode(fourth);
  v.AppendIdxBytes(std::span(bytes).first(7));  // the writer is mid-entry

  auto index = OpenIndex(dir_ / "db", ingest());
  const SyncResult r = Sync(*index, v.files());
  EXPECT_EQ(r.entries_applied, 3u);
  EXPECT_EQ(r.damaged_tail_bytes, 7u);
  EXPECT_EQ(r.state.idx_applied, 48u);
  EXPECT_EQ(Find(*index, 5, 4).outcome, LookupOutcome::kUnknownNeedle);
  const SyncResult still = Sync(*index, v.files());
  EXPECT_EQ(still.action, SyncAction::kUpToDate);
  EXPECT_EQ(still.damaged_tail_bytes, 7u);

  v.AppendIdxBytes(std::span(bytes).subspan(7));
  const SyncResult done = Sync(*index, v.files());
  EXPECT_EQ(done.action, SyncAction::kAppliedTail);
  EXPECT_EQ(done.entries_applied, 1u);
  EXPECT_EQ(done.damaged_tail_bytes, 0u);
  EXPECT_EQ(done.state.idx_applied, 64u);
  EXPECT_EQ(Find(*index, 5, 4).location.offset, fourth.offset);
}

TEST_P(NeedleIndexTest, EntryAheadOfItsDataIsHeldBack) {
  RawVolume v(dir_.path(), 6);
  v.Put(1);
  // An entry whose record is only half in the .dat, then one more whole needle after it.
  const std::vector<uint8_t> rec = v.Record(2, 200);
  const IdxEntry second{2, v.dat_size(), RawVolume::HeaderSize(rec)};
  v.AppendDat(std::span(rec).first(rec.size() / 2));
  v.AppendEntry(second);

  auto index = OpenIndex(dir_ / "db", ingest());
  const SyncResult r = Sync(*index, v.files());
  EXPECT_EQ(r.entries_applied, 1u);
  EXPECT_EQ(r.held_back_entries, 1u);
  EXPECT_EQ(r.held_back_bytes, 16u);
  EXPECT_EQ(r.state.idx_applied, 16u);
  EXPECT_EQ(r.state.live, 1u);
  EXPECT_EQ(Find(*index, 6, 2).outcome, LookupOutcome::kUnknownNeedle);

  // The rest of the record lands: the entry is published by the next sync.
  v.AppendDat(std::span(rec).subspan(rec.size() / 2));
  const SyncResult later = Sync(*index, v.files());
  EXPECT_EQ(later.action, SyncAction::kAppliedTail);
  EXPECT_EQ(later.entries_applied, 1u);
  EXPECT_EQ(later.held_back_entries, 0u);
  EXPECT_EQ(later.state.idx_applied, 32u);
  EXPECT_EQ(later.state.published_end, v.dat_size());
  ExpectMatchesModel(*index, v, 6, r.state.generation);
}

TEST_P(NeedleIndexTest, ListAndDropVolumes) {
  RawVolume a(dir_.path(), 10), b(dir_.path(), 11), c(dir_.path(), UINT32_MAX);
  a.Put(1);
  b.Put(1);
  b.Put(2);
  b.Delete(1);
  c.Put(UINT64_MAX);
  auto index = OpenIndex(dir_ / "db", ingest());
  for (const RawVolume* v : {&c, &a, &b})
    Sync(*index, v->files());

  auto list = index->ListVolumes();
  ASSERT_TRUE(list.has_value()) << list.error().ToString();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].volume_id, 10u);
  EXPECT_EQ((*list)[1].volume_id, 11u);
  EXPECT_EQ((*list)[1].live, 1u);
  EXPECT_EQ((*list)[1].deleted, 1u);
  EXPECT_EQ((*list)[1].idx_applied, 48u);
  EXPECT_EQ((*list)[2].volume_id, UINT32_MAX);
  EXPECT_EQ(Find(*index, UINT32_MAX, UINT64_MAX).outcome, LookupOutcome::kFound);

  ASSERT_TRUE(index->DropVolume(11).ok());
  ASSERT_TRUE(index->DropVolume(UINT32_MAX).ok());
  ASSERT_TRUE(index->DropVolume(12345).ok());  // not there: fine
  EXPECT_EQ(Find(*index, 11, 2).outcome, LookupOutcome::kUnknownVolume);
  EXPECT_EQ(Find(*index, UINT32_MAX, UINT64_MAX).outcome, LookupOutcome::kUnknownVolume);
  EXPECT_EQ(Find(*index, 10, 1).outcome, LookupOutcome::kFound);
  EXPECT_EQ(index->ListVolumes()->size(), 1u);
  EXPECT_EQ(index->GetVolume(11).error().code(), Code::kUnknownVolume);
  // Re-adding a dropped volume is a new volume with a new generation.
  EXPECT_EQ(Sync(*index, b.files()).rebuild_reason, "new volume");
}

TEST_P(NeedleIndexTest, ConcurrentLookupsWhileTailsAreApplied) {
  RawVolume v(dir_.path(), 12);
  std::vector<IdxEntry> written;
  for (uint64_t n = 1; n <= 200; ++n)
    written.push_back(v.Put(n, 1 + n % 37));
  auto index = OpenIndex(dir_ / "db", ingest());
  Sync(*index, v.files());

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> checked{0};
  std::vector<std::thread> readers;
  std::vector<std::string> failures(6);
  for (int t = 0; t < 6; ++t) {
    readers.emplace_back([&, t] {
      // At least 1000 lookups each, and on until the writer is done.
      for (uint64_t i = 0; !stop.load() || i < 1000; ++i) {
        const uint64_t nid = 1 + ((i + 1000 * t) * 7919) % 400;
        auto r = index->Lookup(12, nid);
        if (!r) {
          failures[t] = r.error().ToString();
          return;
        }
        // Written needles never change; later ones are unknown until their entry lands.
        const bool ok = nid <= 200 ? (r->found() && r->location.offset == written[nid - 1].offset)
                                   : (r->found() || r->outcome == LookupOutcome::kUnknownNeedle);
        if (!ok) {
          failures[t] =
              "needle " + std::to_string(nid) + ": " + std::string(LookupOutcomeName(r->outcome));
          return;
        }
        checked.fetch_add(1);
      }
    });
  }
  for (uint64_t n = 201; n <= 400; n += 10) {
    for (uint64_t k = n; k < n + 10; ++k)
      v.Put(k);
    Sync(*index, v.files());
  }
  stop = true;
  for (auto& t : readers)
    t.join();
  for (const std::string& f : failures)
    EXPECT_EQ(f, "");
  EXPECT_GE(checked.load(), 6000u);
  ExpectMatchesModel(*index, v, 12, index->GetVolume(12)->generation);
}

// The lookup cache (index/lookup_cache.h) answers most lookups here; every change the index
// applies must show at once: overwrite, delete, vacuum, drop.
TEST_P(NeedleIndexTest, CachedAnswersFollowEveryChange) {
  RawVolume v(dir_.path(), 13);
  for (uint64_t n = 1; n <= 50; ++n)
    v.Put(n);
  auto index = OpenIndex(dir_ / "db", ingest());
  Sync(*index, v.files());
  const uint64_t g1 = index->GetVolume(13)->generation;
  ExpectMatchesModel(*index, v, 13, g1);
  ExpectMatchesModel(*index, v, 13, g1);
  EXPECT_GE(index->lookup_cache_stats().hits, 50u);
  EXPECT_GE(index->lookup_cache_stats().entries, 50u);

  v.Put(5, 300);  // an overwrite: a new offset
  v.Delete(6);
  Sync(*index, v.files());
  ExpectMatchesModel(*index, v, 13, g1);

  v.Recreate(1);  // vacuum: new files, a rebuild under a new generation
  for (uint64_t n = 1; n <= 20; ++n)
    v.Put(n, 10 + n);
  Sync(*index, v.files());
  const uint64_t g2 = index->GetVolume(13)->generation;
  ASSERT_NE(g1, g2);
  ExpectMatchesModel(*index, v, 13, g2);
  EXPECT_EQ(Find(*index, 13, 30).outcome, LookupOutcome::kUnknownNeedle) << "gone with vacuum";

  ASSERT_TRUE(index->DropVolume(13).ok());
  EXPECT_EQ(Find(*index, 13, 1).outcome, LookupOutcome::kUnknownVolume);
}

// Readers racing a writer that keeps moving a few needles: once SyncVolume returned, no lookup
// may answer an older place (a cache fill from before the write kept after it would).
TEST_P(NeedleIndexTest, NoOlderAnswerOnceASyncReturned) {
  RawVolume v(dir_.path(), 14);
  constexpr uint64_t kNeedles = 4;
  std::array<std::atomic<uint64_t>, kNeedles + 1> published{};
  for (uint64_t n = 1; n <= kNeedles; ++n)
    v.Put(n);
  auto index = OpenIndex(dir_ / "db", ingest());
  Sync(*index, v.files());
  for (uint64_t n = 1; n <= kNeedles; ++n)
    published[n] = v.model().at(n).offset;

  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  std::vector<std::string> failures(4);
  std::atomic<uint64_t> lookups{0};
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      for (uint64_t i = 0; !stop.load(); ++i) {
        const uint64_t nid = 1 + (i + t) % kNeedles;
        const uint64_t floor = published[nid].load();
        auto r = index->Lookup(14, nid);
        lookups.fetch_add(1);
        if (!r || !r->found() || r->location.offset < floor) {
          failures[t] = "needle " + std::to_string(nid) + ": " +
                        (r ? std::to_string(r->location.offset) : r.error().ToString()) +
                        " after " + std::to_string(floor) + " was published";
          return;
        }
      }
    });
  }
  for (int round = 0; round < 300; ++round) {
    const uint64_t nid = 1 + round % kNeedles;
    const IdxEntry e = v.Put(nid, 1 + round % 50);
    Sync(*index, v.files());
    published[nid] = e.offset;
  }
  stop = true;
  for (auto& t : readers)
    t.join();
  for (const std::string& f : failures)
    EXPECT_EQ(f, "");
  EXPECT_GT(lookups.load(), 1000u);
  EXPECT_GT(index->lookup_cache_stats().hits, 0u);
}

INSTANTIATE_TEST_SUITE_P(Publish, NeedleIndexTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Ingest" : "WriteBatch"; });

TEST(NeedleIndexErrors, MissingFilesAreIOErrorsNamingThem) {
  TempDir dir("needle-index");
  auto index = OpenIndex(dir / "db", false);
  VolumeFiles f;
  f.volume_id = 1;
  f.dat = dir / "1.dat";
  f.idx = dir / "1.idx";
  auto r = index->SyncVolume(f);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kIOError);
  EXPECT_NE(r.error().message().find("1.dat"), std::string::npos) << r.error().ToString();
  EXPECT_EQ(index->GetVolume(1).error().code(), Code::kUnknownVolume);
}

TEST(NeedleIndexErrors, SecondOpenOfTheSameDatabaseFails) {
  TempDir dir("needle-index");
  auto first = OpenIndex(dir / "db", false);
  auto second = NeedleIndex::Open(dir / "db");
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), Code::kIOError);
  EXPECT_NE(second.error().message().find((dir / "db").string()), std::string::npos)
      << second.error().ToString();
}

// The shared SeaweedFS files, read in place.
TEST(NeedleIndexFixtures, HealthyVolumeAndEcVolume) {
  SWRDMA_REQUIRE_FIXTURES(fixtures);
  TempDir dir("needle-index");
  auto index = OpenIndex(dir / "db", false);
  VolumeFiles healthy{.volume_id = 5,
                      .dat = fixtures / "healthy_volume.dat",
                      .idx = fixtures / "healthy_volume.idx"};
  const SyncResult h = Sync(*index, healthy);
  EXPECT_EQ(h.state.live, 7u);
  EXPECT_EQ(h.state.deleted, 10u);
  EXPECT_EQ(h.entries_applied, 27u);
  EXPECT_EQ(h.held_back_entries, 0u);
  EXPECT_EQ(h.state.published_end, fs::file_size(healthy.dat));
  const NeedleLookup three = Find(*index, 5, 3);
  ASSERT_EQ(three.outcome, LookupOutcome::kFound);
  EXPECT_EQ(three.location.offset, 8u);
  EXPECT_EQ(three.location.size, 0x12784u);
  EXPECT_EQ(Find(*index, 5, 0x14).outcome, LookupOutcome::kDeleted);
  EXPECT_EQ(Find(*index, 5, 0x2).outcome, LookupOutcome::kUnknownNeedle);

  VolumeFiles ec{.volume_id = 1, .dat = fixtures / "ec_1.dat", .idx = fixtures / "ec_1.idx"};
  const SyncResult e = Sync(*index, ec);
  EXPECT_EQ(e.state.live, 298u);
  EXPECT_EQ(e.state.deleted, 0u);
  EXPECT_EQ(e.held_back_entries, 0u);
  EXPECT_EQ(e.state.needle_version, NeedleVersion::kV3);
  EXPECT_EQ(Find(*index, 1, 0x08).outcome, LookupOutcome::kFound);  // fid 1,08ccd23656
  EXPECT_EQ(index->ListVolumes()->size(), 2u);
}

// 5-byte offsets: the shared .idx beside a sparse .dat large enough for its ~122 GiB offsets.
TEST(NeedleIndexFixtures, FiveByteOffsetIdx) {
  SWRDMA_REQUIRE_FIXTURES(fixtures);
  TempDir dir("needle-index");
  const fs::path dat = dir / "187.dat";
  AppendFile(dat, EncodeSuperBlock(SuperBlock{}));
  fs::resize_file(dat, 256ull << 30);
  auto index = OpenIndex(dir / "db", true);
  VolumeFiles v{.volume_id = 187, .dat = dat, .idx = fixtures / "187_5byteoffset.idx"};
  auto r = index->SyncVolume(v, SyncOptions{.fallback_offset_width = OffsetWidth::k5});
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->entries_applied, 60527u);
  EXPECT_EQ(r->state.offset_width, OffsetWidth::k5);
  EXPECT_EQ(r->state.live + r->state.deleted, 60493u);
  EXPECT_EQ(r->state.deleted, 34u);
  const NeedleLookup big = Find(*index, 187, 0x671b905);
  ASSERT_EQ(big.outcome, LookupOutcome::kFound);
  EXPECT_EQ(big.location.offset, 12884911892ull * 8);  // stored units of 8 bytes
}

}  // namespace
}  // namespace swrdma
