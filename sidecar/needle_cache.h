// A small cache of verified, decompressed needle data for the sidecar, with single flight.
//
// Why: `weed mount` reads a chunk (one needle, often MiBs) in FUSE-sized pieces, each one a
// /read with its own offset, several at once (read-ahead). Verification needs the whole record,
// so without a cache every piece would fetch and check the whole needle again. Concurrent
// requests for the same needle wait for the one read in flight instead of repeating it.
//
// Staleness: a fid's bytes never change in SeaweedFS, but a needle can be deleted; an entry is
// served for at most `ttl` after it was read, the same bound as the client's lookup cache
// (ClientOptions::lookup_cache_ttl, 1 s by default). Failures are never cached.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocol/status.h"

namespace swrdma::client {

struct NeedleCacheStats {
  uint64_t hits = 0;    // served from the cache (or from a read another request had in flight)
  uint64_t misses = 0;  // loads
  uint64_t bytes = 0;   // cached now
  uint64_t entries = 0;
};

class NeedleCache {
 public:
  using Data = std::shared_ptr<const std::vector<uint8_t>>;
  using Loader = std::function<Result<std::vector<uint8_t>>()>;

  // max_bytes 0: nothing is kept (concurrent requests still share one read). Needles larger
  // than max_bytes / 4 are not kept either, so one big needle cannot flush the rest.
  NeedleCache(size_t max_bytes, std::chrono::milliseconds ttl);

  // The data under `key`: cached and fresh, or being loaded by another caller (waits for it),
  // or loaded now by calling `load` (outside the lock). `hit` says whether `load` was skipped.
  Result<Data> GetOrLoad(const std::string& key, const Loader& load, bool* hit = nullptr);

  NeedleCacheStats stats() const;

 private:
  struct Entry {
    bool loading = true;
    Data data;
    Status error;  // of the load, for the callers that waited on it
    std::chrono::steady_clock::time_point expires;
    std::list<std::string>::iterator lru;  // valid while kept
    bool kept = false;
  };
  // Shared: a caller waiting for a load holds its entry even if the map drops it meanwhile.
  using Entries = std::unordered_map<std::string, std::shared_ptr<Entry>>;
  void EvictLocked(size_t room);
  void DropLocked(Entries::iterator it);

  const size_t max_bytes_;
  const std::chrono::milliseconds ttl_;
  mutable std::mutex mu_;
  std::condition_variable loaded_;
  Entries entries_;
  std::list<std::string> lru_;  // front: least recently used
  size_t bytes_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace swrdma::client
