// Registered local buffers, allocated once and reused: the destinations of one-sided gets (and,
// for a push mode, of a peer's puts).
//
// Why: a get into fresh memory pays for the allocation, the page faults and zero-fill of every
// page, and (on NICs) a registration; a 1 MiB read spent about half its time there. The pool
// maps memory in chunks, touches every page once, registers each chunk once (through a Registrar:
// ucp_mem_map, ibv_reg_mr) and
// hands out buffers carved from it. A released buffer goes back to the free list of its size
// class; the next Acquire of that class is a registration-cache hit. Idle chunks beyond
// `max_idle_bytes` are unregistered and unmapped, least recently used first.
//
// Size classes: 4 KiB pages rounded up to 4 steps per power of two (4, 5, 6, 7, 8, 10, 12, 14,
// 16 KiB, ...), so a 1 MiB needle record (1 MiB + ~40 bytes) takes a 1.25 MiB buffer, not 2 MiB.
// Buffers smaller than 2 MiB are carved from 2 MiB chunks (one registration, one huge page).
//
// Hugepages (`hugepages = true`): chunks are mapped with MAP_HUGETLB (2 MiB pages, from
// vm.nr_hugepages); when the kernel has none to give, the chunk is mapped 2 MiB-aligned and
// madvise(MADV_HUGEPAGE)d instead (transparent huge pages), and stats().hugepage_note says why.
//
// Lifetime: the Registrar (and what it registers with) must outlive the pool and stay at the
// same address. Buffers may
// outlive the pool: the pool's destructor unregisters every chunk, and a chunk still holding
// buffers is unmapped when its last buffer is released (its bytes stay readable; its rkey is no
// longer valid). Thread: Acquire and release are safe from any thread. The first thread to
// acquire owns small per-class stacks of idle buffers (classes up to 64 KiB) that it uses
// without locking; every other case takes the pool's mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "protocol/status.h"
#include "rdma/registration.h"

namespace swrdma::rdma {

struct BufferPoolOptions {
  bool hugepages = false;
  // Idle registered memory kept for reuse; beyond it, idle chunks are released (LRU).
  size_t max_idle_bytes = size_t{512} << 20;
  // kRemoteReadWrite so that a peer can ucp_put_nbx into a buffer (push mode).
  RegionAccess access = RegionAccess::kRemoteReadWrite;
};

struct BufferPoolStats {
  uint64_t hits = 0;       // Acquire served by an idle registered buffer
  uint64_t misses = 0;     // Acquire that had to map and register a new chunk
  uint64_t evictions = 0;  // idle chunks unregistered to stay under max_idle_bytes
  uint64_t chunks = 0;     // chunks currently mapped
  uint64_t registered_bytes = 0;
  uint64_t buffers_out = 0;   // buffers acquired and not yet released
  std::string hugepages;      // "off", "hugetlb", "thp" (madvise) or "mixed"
  std::string hugepage_note;  // why MAP_HUGETLB was not used, when asked for and refused

  double hit_rate() const {
    const uint64_t all = hits + misses;
    return all == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(all);
  }
};

namespace detail {
struct PoolCore;
struct PoolChunk;
}  // namespace detail

// One registered buffer; move-only, back to its pool on destruction.
class PooledBuffer {
 public:
  PooledBuffer() = default;
  PooledBuffer(PooledBuffer&& other) noexcept;
  PooledBuffer& operator=(PooledBuffer&& other) noexcept;
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  ~PooledBuffer() { Release(); }

  explicit operator bool() const { return data_ != nullptr; }
  std::byte* data() const { return data_; }
  // The buffer's capacity (its size class), at least what Acquire asked for.
  size_t size() const { return size_; }
  std::span<std::byte> span() const { return {data_, size_}; }
  // Virtual address as a peer addresses it (push mode: the target of its ucp_put_nbx).
  uint64_t address() const { return reinterpret_cast<uintptr_t>(data_); }
  // The registration covering the buffer (its chunk's), null after the pool is gone.
  const Registration* registration() const;
  // Address, capacity and packed rkey of this buffer, for a peer to write (or read) it. The rkey
  // is that of the whole chunk, packed once per chunk; only a NIC that enforces keys limits the
  // peer to the chunk (emulated transports do not: see docs/security.md).
  Result<RemoteRegion> Describe() const;

  // Gives the buffer back now.
  void Release();

 private:
  friend class BufferPool;
  PooledBuffer(detail::PoolCore* core, detail::PoolChunk* chunk, std::byte* data, size_t size)
      : core_(core), chunk_(chunk), data_(data), size_(size) {}

  // Not owned: the core lives until its pool is gone and the last buffer is back.
  detail::PoolCore* core_ = nullptr;
  detail::PoolChunk* chunk_ = nullptr;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

class BufferPool {
 public:
  static Result<BufferPool> Create(const Registrar& registrar,
                                   const BufferPoolOptions& options = {});

  BufferPool(BufferPool&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}
  BufferPool& operator=(BufferPool&& other) noexcept;
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  // A registered buffer of at least `bytes` (> 0). kResourceExhausted when mapping fails, or
  // the registration's error.
  Result<PooledBuffer> Acquire(size_t bytes);

  BufferPoolStats stats() const;

  // The size class Acquire(bytes) hands out.
  static size_t SizeClass(size_t bytes);

 private:
  explicit BufferPool(detail::PoolCore* core) : core_(core) {}
  void Shutdown();

  detail::PoolCore* core_ = nullptr;  // deleted by Shutdown, or later by the last buffer's release
};

}  // namespace swrdma::rdma
