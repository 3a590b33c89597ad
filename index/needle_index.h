// The agent's needle index: one RocksDB database mapping (volume id, needle id) to where the
// needle's record lies in that volume's `.dat`, kept in step with the volume server's `.idx` files.
//
// Layout (one column family, "needles", tuned for point lookups):
//   key  vid u32 BE | needle id u64 BE (12 bytes)  -> offset u64 | size u32 | cookie u32 |
//                                                    generation u64 (24 bytes, BE)
//   key  vid u32 BE (4 bytes)                       -> the volume's sync state (VolumeState)
// The 4-byte volume key sorts just before the volume's needles, so a volume is one contiguous key
// range [vid, vid+1): dropping or rebuilding it is one range deletion, and a rebuild (range
// deletion + new state + all entries) is published atomically by one SST ingestion or one
// WriteBatch. Deleted needles stay as tombstone values so a lookup can tell "deleted" from
// "never heard of".
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/needle.h"
#include "protocol/status.h"
#include "volume/idx_file.h"
#include "volume/volume_files.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace swrdma {

class LookupCache;
struct LookupCacheStats;

// Where a needle's record is. `offset` is in bytes from the start of the `.dat`; `size` is the
// header's size field (read NeedleRecordLength(size, version) bytes from `offset`).
struct NeedleLocation {
  uint64_t offset = 0;
  uint32_t size = 0;
  uint32_t cookie = 0;  // 0 = unknown: `.idx` files do not carry cookies
  uint64_t generation = 0;
  friend bool operator==(const NeedleLocation&, const NeedleLocation&) = default;
};

enum class LookupOutcome : uint8_t { kFound, kDeleted, kUnknownVolume, kUnknownNeedle };
std::string_view LookupOutcomeName(LookupOutcome o);

struct NeedleLookup {
  LookupOutcome outcome = LookupOutcome::kUnknownVolume;
  NeedleLocation location;  // kFound: the record; kDeleted: generation only
  bool found() const { return outcome == LookupOutcome::kFound; }
};

struct NeedleKey {
  uint32_t volume_id = 0;
  uint64_t needle_id = 0;
};

// What the index knows about one volume, persisted with its entries.
struct VolumeState {
  uint32_t volume_id = 0;
  uint64_t generation = 0;  // changes on every rebuild; names the `.dat` inode the offsets are for
  OffsetWidth offset_width = OffsetWidth::k4;
  NeedleVersion needle_version = NeedleVersion::kV3;
  uint16_t compaction_revision = 0;
  uint64_t dat_device = 0;
  uint64_t dat_inode = 0;
  uint64_t dat_size = 0;  // `.dat` size seen by the last sync
  uint64_t published_end =
      0;  // highest record end published; a `.dat` shorter than this forces a rebuild
  uint64_t idx_inode = 0;
  uint64_t idx_applied = 0;  // watermark: bytes of `.idx` applied (whole entries)
  uint64_t live = 0;         // needles whose last entry is a write
  uint64_t deleted = 0;      // needles whose last entry is a deletion
  friend bool operator==(const VolumeState&, const VolumeState&) = default;
};

enum class SyncAction : uint8_t { kUpToDate, kAppliedTail, kRebuilt };
std::string_view SyncActionName(SyncAction a);

struct SyncResult {
  SyncAction action = SyncAction::kUpToDate;
  std::string rebuild_reason;    // why, for kRebuilt ("new volume", "compaction revision 3 -> 4")
  uint64_t entries_applied = 0;  // `.idx` entries replayed by this sync
  uint64_t damaged_tail_bytes = 0;  // partial entry at the end of `.idx`, left for the next sync
  uint64_t held_back_entries = 0;   // whole entries not applied: record not yet all in the `.dat`
  uint64_t held_back_bytes = 0;     // their `.idx` bytes (the watermark stops before them)
  uint64_t unwrapped_entries = 0;   // 4-byte offsets found 32 GiB further (UnwrapOffsets)
  VolumeState state;                // the volume after the sync
};

struct NeedleIndexOptions {
  bool create_if_missing = true;
  uint64_t block_cache_bytes = 256ull << 20;
  // LZ4 data blocks. Off: 2.4x larger files, ~10 % faster loads, no decompression on cache misses.
  bool compress = true;
  // Rebuilds with at least this many distinct needles are written as SST files and ingested;
  // smaller ones go in one WriteBatch (cheaper than files for every tiny volume).
  uint64_t ingest_min_entries = 50'000;
  // Threads writing the SST files of a large rebuild, each taking at least
  // `min_entries_per_build_thread` entries (below that a thread costs more than it saves).
  unsigned build_threads = 2;
  uint64_t min_entries_per_build_thread = 500'000;
  // Tails are applied in WriteBatches of at most this many entries, each carrying the watermark
  // of its last entry, so a huge tail neither needs one giant batch nor loses crash safety.
  uint64_t tail_batch_entries = 256 * 1024;
  // Answers of Lookup kept in memory in front of RocksDB (index/lookup_cache.h); 0: none.
  // About 80 bytes an entry.
  size_t lookup_cache_entries = 512 * 1024;
};

// What NeedleIndex::SampleLive draws.
struct SampleOptions {
  size_t count = 1000;  // live needles wanted (fewer if the volume has fewer)
  uint64_t seed = 0;    // same seed and index state, same answer
  // Volumes with at most this many index entries (live + deleted) are scanned whole, which gives
  // an exactly uniform sample; larger ones are sampled by random seeks (see SampleLive).
  uint64_t full_scan_entries = 256 * 1024;
};

struct SampledNeedle {
  uint64_t needle_id = 0;
  NeedleLocation location;
};

// Called during long syncs: phase "scan" (reading `.idx`) or "write" (writing RocksDB). Always
// on the thread that called SyncVolume, never concurrently.
using SyncProgressFn = std::function<void(std::string_view phase, uint64_t done, uint64_t total)>;

struct SyncOptions {
  // `.idx` offset width when the volume has no `.vif` saying otherwise.
  OffsetWidth fallback_offset_width = OffsetWidth::k4;
  bool force_rebuild = false;
};

class NeedleIndex {
 public:
  // Opens (or creates) the database at `path`.
  static Result<std::unique_ptr<NeedleIndex>> Open(const std::filesystem::path& path,
                                                   const NeedleIndexOptions& options = {});
  ~NeedleIndex();
  NeedleIndex(const NeedleIndex&) = delete;
  NeedleIndex& operator=(const NeedleIndex&) = delete;

  // Brings one volume up to date with its files: applies the new `.idx` tail when the `.dat` is
  // the same file as last time, else rebuilds the volume under a new generation. Only entries
  // whose whole record is already in the `.dat` are published. Serialized with other writers.
  Result<SyncResult> SyncVolume(const VolumeFiles& volume, const SyncOptions& options = {},
                                const SyncProgressFn& progress = {});

  // Removes the volume and all its entries (kOk if it was not there).
  Status DropVolume(uint32_t volume_id);

  // Every indexed volume, by volume id.
  Result<std::vector<VolumeState>> ListVolumes() const;
  // kUnknownVolume if the volume is not indexed.
  Result<VolumeState> GetVolume(uint32_t volume_id) const;

  // Thread-safe; errors only for RocksDB failures (I/O, corruption).
  Result<NeedleLookup> Lookup(uint32_t volume_id, uint64_t needle_id) const;
  // One answer per key, in order, from one consistent snapshot (RocksDB MultiGet).
  Result<std::vector<NeedleLookup>> LookupMany(std::span<const NeedleKey> keys) const;

  // Up to `options.count` distinct live needles of one volume, in random order, for benchmarks
  // and spot checks (nothing on the read path). Small volumes: one scan with reservoir sampling,
  // uniform. Large volumes: seeks to random needle ids between the volume's first and last,
  // each taking the next live needle; O(count) seeks instead of a scan of millions of entries,
  // at the price of favouring needles that follow gaps in the id space. kUnknownVolume if the
  // volume is not indexed.
  Result<std::vector<SampledNeedle>> SampleLive(uint32_t volume_id,
                                                const SampleOptions& options) const;

  const std::filesystem::path& path() const { return path_; }
  // Lookup's in-memory cache: hits, misses, entries held.
  LookupCacheStats lookup_cache_stats() const;

 private:
  struct Handles;
  NeedleIndex(std::filesystem::path path, NeedleIndexOptions options,
              std::unique_ptr<Handles> handles);

  Result<uint64_t> NextGeneration();
  // Replaces the volume's whole key range by `state` and `entries` (sorted, one per needle id),
  // atomically: one ingested SST file, or one WriteBatch for small volumes.
  Status WriteRebuild(const VolumeState& state, const std::vector<IdxEntry>& entries,
                      const SyncProgressFn& progress);
  // Applies `entries` (in `.idx` order, starting at `.idx` byte `state.idx_applied`) in batches
  // that each carry the advanced watermark and counts; updates `state` as they land.
  Status WriteTail(VolumeState& state, const std::vector<IdxEntry>& entries,
                   const SyncProgressFn& progress);

  std::filesystem::path path_;
  NeedleIndexOptions options_;
  std::unique_ptr<Handles> h_;
  std::unique_ptr<LookupCache> cache_;
  std::mutex write_mu_;  // one SyncVolume / DropVolume at a time
};

}  // namespace swrdma
