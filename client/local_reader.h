// The client's same-host path (issue 18): talks to the agent's Unix socket (agent/local_server.h),
// maps the read-only volume descriptors it hands out (shared, read-only) and keeps them per
// (volume, generation). Client::Impl::LocalRound (client/local_round.cc) verifies records in place
// in these mappings: a NeedleView then points into the page cache, no byte is copied.
//
// Generations: a lookup answer names the export's generation; a mapping of another generation is
// replaced by opening the volume again (vacuum: a new file). A file grown past the mapping is
// mapped again from the same descriptor. Old mappings live as long as views hold them.
//
// Truncation: every mapping is registered with rdma::FaultGuard, so touching a page the file no
// longer has (truncated under us) reads zeros instead of raising SIGBUS; zeros never pass a
// record's checks, the mapping is flagged and dropped, and the read is retried after a fresh
// lookup. This also protects views handed out earlier: they read zeros, never crash (their bytes
// were verified when read). The guard installs process-wide SIGBUS/SIGSEGV handlers that chain
// to the previous ones for every other address.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "client/needle_view.h"
#include "protocol/file_id.h"
#include "protocol/local_messages.h"
#include "protocol/status.h"
#include "rdma/fd_passing.h"

namespace swrdma::client {

// One read-only shared mapping of a volume's .dat (descriptor from the agent).
class LocalMapping {
 public:
  // Maps `fd` from offset 0: the file's current size plus `reserve` bytes of address space, so a
  // growing file is served without mapping again (only what the agent's index covers is read).
  static Result<std::shared_ptr<const LocalMapping>> Map(rdma::UniqueFd fd, uint32_t volume_id,
                                                         uint64_t generation, uint8_t version,
                                                         uint64_t reserve);
  ~LocalMapping();
  LocalMapping(const LocalMapping&) = delete;
  LocalMapping& operator=(const LocalMapping&) = delete;

  const std::byte* data() const { return base_; }
  uint64_t mapped_length() const { return length_; }
  uint32_t volume_id() const { return volume_id_; }
  uint64_t generation() const { return generation_; }
  uint8_t version() const { return version_; }
  int fd() const { return fd_.get(); }
  // True once a read of this mapping touched a page the file no longer has (sticky).
  bool Faulted() const;

 private:
  LocalMapping(rdma::UniqueFd fd, std::byte* base, uint64_t length, int slot, uint32_t vid,
               uint64_t generation, uint8_t version)
      : fd_(std::move(fd)),
        base_(base),
        length_(length),
        slot_(slot),
        volume_id_(vid),
        generation_(generation),
        version_(version) {}

  rdma::UniqueFd fd_;
  std::byte* base_ = nullptr;
  uint64_t length_ = 0;
  int slot_ = -1;
  uint32_t volume_id_ = 0;
  uint64_t generation_ = 0;
  uint8_t version_ = 3;
  mutable bool faulted_ = false;
};

// What a local view holds: its mapping, and where the record lies in it. Four words, nothing
// points into it: BufferKeeper may relocate it with memcpy (std::shared_ptr is two pointers).
struct LocalSlice {
  std::shared_ptr<const LocalMapping> mapping;
  const std::byte* bytes = nullptr;
  size_t length = 0;

  LocalSlice() = default;
  LocalSlice(std::shared_ptr<const LocalMapping> m, const std::byte* b, size_t n)
      : mapping(std::move(m)), bytes(b), length(n) {}
  LocalSlice(LocalSlice&&) noexcept = default;
  LocalSlice& operator=(LocalSlice&&) noexcept = default;
  explicit operator bool() const { return bytes != nullptr; }
  const std::byte* data() const { return bytes; }
  size_t size() const { return length; }
};

template <>
inline constexpr bool kRelocatableBufferOwner<LocalSlice> = true;

struct LocalReaderStats {
  uint64_t lookups = 0;  // fids looked up over the socket
  uint64_t opens = 0;    // descriptors received
  uint64_t remaps = 0;   // grown files mapped again
  uint64_t dropped = 0;  // mappings dropped after a failed check or a fault
};

class LocalReader {
 public:
  // Connects to the agent's socket and checks that it is the agent `instance` (/v1/info
  // "local_instance"): kUnavailable when the socket is absent or another agent's,
  // kPermissionDenied when the agent refuses this user (the reason names the flags to change).
  static Result<std::unique_ptr<LocalReader>> Connect(const std::string& path, uint64_t instance,
                                                      std::chrono::milliseconds timeout);

  // The agent's index answers for `fids`, one per fid in order (chunked to the agent's limit).
  Result<std::vector<LocalLookupEntry>> Lookup(std::span<const std::string> fids);

  // The mapping of (vid, generation) covering [0, end): opens the volume again for a new
  // generation, maps a grown file again. kStale when the agent already serves another generation
  // (the lookup is outdated: look up again).
  Result<std::shared_ptr<const LocalMapping>> MappingFor(uint32_t vid, uint64_t generation,
                                                         uint64_t end);
  // Forgets the mapping of `vid` (after a failed check): the next read opens it afresh.
  void Drop(uint32_t vid);

  // Lookup answers kept for `ttl` (ClientOptions::lookup_cache_ttl), by parsed fid.
  struct Cached {
    uint32_t volume_id;
    uint32_t size;
    uint64_t generation;
    uint64_t offset;
    uint64_t length;
    uint8_t version;
    std::chrono::steady_clock::time_point expires;
  };
  const Cached* Find(const FileId& fid, std::chrono::steady_clock::time_point now) const {
    auto it = cache_.find(fid);
    return it == cache_.end() || it->second.expires <= now ? nullptr : &it->second;
  }
  void Remember(const FileId& fid, const Cached& c, size_t max_entries) {
    if (cache_.size() >= max_entries) cache_.clear();
    cache_[fid] = c;
  }
  void Forget(const FileId& fid) { cache_.erase(fid); }

  const LocalReaderStats& stats() const { return stats_; }
  const std::string& path() const { return path_; }

 private:
  LocalReader(rdma::UniqueFd sock, std::string path, std::chrono::milliseconds timeout,
              size_t max_lookup)
      : sock_(std::move(sock)),
        path_(std::move(path)),
        timeout_(timeout),
        max_lookup_(max_lookup) {}
  Result<std::vector<uint8_t>> Call(const LocalRequest& req, rdma::UniqueFd* fd = nullptr);

  rdma::UniqueFd sock_;
  std::string path_;
  std::chrono::milliseconds timeout_;
  size_t max_lookup_;
  std::unordered_map<uint32_t, std::shared_ptr<const LocalMapping>> maps_;  // newest per volume
  struct FidHash {
    size_t operator()(const FileId& f) const {
      uint64_t h = f.needle_id * 0x9E3779B97F4A7C15ull;
      h ^= (uint64_t{f.volume_id} << 32 | f.cookie) + 0x7F4A7C159E3779B9ull + (h << 6) + (h >> 2);
      return static_cast<size_t>(h ^ (h >> 29));
    }
  };
  std::unordered_map<FileId, Cached, FidHash> cache_;
  LocalReaderStats stats_;
};

}  // namespace swrdma::client
