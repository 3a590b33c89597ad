// A bounded in-memory cache of NeedleIndex point lookups.
//
// Every checked read resolves its fid in the index, and a RocksDB Get (even from the block cache)
// was about half of the agent's CPU per 4 KiB read over shared memory. The hot needles of a
// volume are few next to its entries, so their answers are kept here, in front of RocksDB.
//
// Never a stale answer after a write has returned: a writer updates RocksDB first, then
// invalidates (one key: Invalidate; a rebuilt or dropped volume: InvalidateAll), and a reader
// that missed fills the cache only if no invalidation of its shard came between its miss and
// its fill (the Ticket), so an answer read from RocksDB before a write cannot be kept after it.
// A lookup that runs while a write is under way may see the state before or after it, as it
// may from RocksDB itself.
//
// Only found and deleted answers are kept: lookups of needles that do not exist (a scan of
// random ids) go to RocksDB and cannot evict the hot set. A full shard (1/64 of the capacity)
// is emptied at once: crude, but bounded and O(1) per lookup.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "index/needle_index.h"

namespace swrdma {

struct LookupCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t entries = 0;
};

class LookupCache {
 public:
  // `capacity` entries in all (0: off: every Find misses, Fill keeps nothing).
  explicit LookupCache(size_t capacity);
  LookupCache(const LookupCache&) = delete;
  LookupCache& operator=(const LookupCache&) = delete;

  // What a miss saw; Fill keeps its answer only if nothing was invalidated since.
  struct Ticket {
    uint64_t epoch = 0;
    uint64_t version = 0;
  };

  std::optional<NeedleLookup> Find(uint32_t volume_id, uint64_t needle_id, Ticket& ticket) const;
  void Fill(uint32_t volume_id, uint64_t needle_id, const NeedleLookup& answer,
            const Ticket& ticket) const;

  // After the index changed the entry of one needle (an applied .idx entry).
  void Invalidate(uint32_t volume_id, uint64_t needle_id);
  // After a volume was rebuilt or dropped: every entry goes (shards empty themselves lazily).
  void InvalidateAll();

  size_t capacity() const { return capacity_; }
  LookupCacheStats stats() const;

 private:
  static constexpr size_t kShards = 64;
  struct Key {
    uint32_t volume_id = 0;
    uint64_t needle_id = 0;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<Key, NeedleLookup, KeyHash> map;  // guarded by mu
    uint64_t epoch = 0;                                  // guarded by mu: of map's entries
    uint64_t version = 0;                                // guarded by mu: Invalidate count
  };

  Shard& ShardOf(const Key& k) const { return shards_[KeyHash{}(k) % kShards]; }
  // Empties `s` if InvalidateAll ran since its entries were filled. s.mu held.
  void Sync(Shard& s) const;

  const size_t capacity_;
  const size_t per_shard_;
  mutable std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> epoch_{0};
  mutable std::atomic<uint64_t> hits_{0};
  mutable std::atomic<uint64_t> misses_{0};
};

}  // namespace swrdma
