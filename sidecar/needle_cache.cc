#include "sidecar/needle_cache.h"

namespace swrdma::client {

NeedleCache::NeedleCache(size_t max_bytes, std::chrono::milliseconds ttl)
    : max_bytes_(max_bytes), ttl_(ttl) {}

void NeedleCache::DropLocked(Entries::iterator it) {
  Entry& e = *it->second;
  if (e.kept) {
    bytes_ -= e.data->size();
    lru_.erase(e.lru);
    e.kept = false;
  }
  entries_.erase(it);
}

void NeedleCache::EvictLocked(size_t room) {
  while (bytes_ + room > max_bytes_ && !lru_.empty()) {
    auto it = entries_.find(lru_.front());
    DropLocked(it);
  }
}

Result<NeedleCache::Data> NeedleCache::GetOrLoad(const std::string& key, const Loader& load,
                                                 bool* hit) {
  if (hit) *hit = true;
  std::unique_lock lock(mu_);
  if (auto it = entries_.find(key); it != entries_.end()) {
    std::shared_ptr<Entry> e = it->second;
    if (e->loading) {
      loaded_.wait(lock, [&] { return !e->loading; });
      ++hits_;
      if (!e->error.ok()) return Error(e->error);
      return e->data;
    }
    if (e->expires > std::chrono::steady_clock::now()) {
      ++hits_;
      lru_.splice(lru_.end(), lru_, e->lru);  // most recently used
      return e->data;
    }
    DropLocked(it);
  }
  if (hit) *hit = false;
  ++misses_;
  auto e = std::make_shared<Entry>();
  entries_[key] = e;
  lock.unlock();
  auto loaded = load();  // the agent round trip, outside the lock
  lock.lock();
  e->loading = false;
  if (loaded) {
    e->data = std::make_shared<const std::vector<uint8_t>>(std::move(*loaded));
    e->expires = std::chrono::steady_clock::now() + ttl_;
  } else {
    e->error = loaded.error();
  }
  auto it = entries_.find(key);
  const size_t size = loaded ? e->data->size() : 0;
  if (loaded && max_bytes_ > 0 && size <= max_bytes_ / 4) {
    EvictLocked(size);
    e->lru = lru_.insert(lru_.end(), key);
    e->kept = true;
    bytes_ += size;
  } else if (it != entries_.end() && it->second == e) {
    entries_.erase(it);  // not kept: the callers waiting on it have their own reference
  }
  loaded_.notify_all();
  if (!loaded) return Error(e->error);
  return e->data;
}

NeedleCacheStats NeedleCache::stats() const {
  std::lock_guard lock(mu_);
  return {hits_, misses_, bytes_, lru_.size()};
}

}  // namespace swrdma::client
