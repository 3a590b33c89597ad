#include "index/lookup_cache.h"

#include <algorithm>

namespace swrdma {

size_t LookupCache::KeyHash::operator()(const Key& k) const noexcept {
  // splitmix64 of both ids: needle ids are sequential, the shard and bucket must not be.
  uint64_t x = k.needle_id ^ (uint64_t{k.volume_id} << 40) ^ uint64_t { k.volume_id };
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return static_cast<size_t>(x ^ (x >> 31));
}

LookupCache::LookupCache(size_t capacity)
    : capacity_(capacity),
      per_shard_(capacity == 0 ? 0 : std::max<size_t>(1, capacity / kShards)) {}

void LookupCache::Sync(Shard& s) const {
  const uint64_t now = epoch_.load(std::memory_order_acquire);
  if (s.epoch != now) {
    s.map.clear();
    s.epoch = now;
  }
}

std::optional<NeedleLookup> LookupCache::Find(uint32_t volume_id, uint64_t needle_id,
                                              Ticket& ticket) const {
  if (capacity_ == 0) return std::nullopt;
  const Key key{volume_id, needle_id};
  Shard& s = ShardOf(key);
  std::lock_guard lock(s.mu);
  Sync(s);
  if (auto it = s.map.find(key); it != s.map.end()) {
    hits_.fetch_add(1, std::memory_order_relaxed);
    return it->second;
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  ticket = {s.epoch, s.version};
  return std::nullopt;
}

void LookupCache::Fill(uint32_t volume_id, uint64_t needle_id, const NeedleLookup& answer,
                       const Ticket& ticket) const {
  if (capacity_ == 0) return;
  if (answer.outcome != LookupOutcome::kFound && answer.outcome != LookupOutcome::kDeleted) return;
  const Key key{volume_id, needle_id};
  Shard& s = ShardOf(key);
  std::lock_guard lock(s.mu);
  Sync(s);
  // A write landed between the miss and now: the answer may predate it.
  if (s.epoch != ticket.epoch || s.version != ticket.version) return;
  if (s.map.size() >= per_shard_) s.map.clear();
  s.map.insert_or_assign(key, answer);
}

void LookupCache::Invalidate(uint32_t volume_id, uint64_t needle_id) {
  if (capacity_ == 0) return;
  const Key key{volume_id, needle_id};
  Shard& s = ShardOf(key);
  std::lock_guard lock(s.mu);
  s.map.erase(key);
  ++s.version;
}

void LookupCache::InvalidateAll() {
  epoch_.fetch_add(1, std::memory_order_acq_rel);
}

LookupCacheStats LookupCache::stats() const {
  LookupCacheStats out;
  out.hits = hits_.load(std::memory_order_relaxed);
  out.misses = misses_.load(std::memory_order_relaxed);
  for (Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    out.entries += s.epoch == epoch_.load(std::memory_order_acquire) ? s.map.size() : 0;
  }
  return out;
}

}  // namespace swrdma
