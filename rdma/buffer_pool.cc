#include "rdma/buffer_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace swrdma::rdma {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kHugePage = size_t{2} << 20;
// Buffers below this share chunks of this size: one registration (and one huge page) for many.
constexpr size_t kChunkBytes = kHugePage;
// The owner thread's magazines (PoolCore) hold buffers of classes up to this size, up to
// kMagazineBytes (at most kMagazineDepth buffers) per class, for kMagazines classes at a time.
constexpr size_t kMagazineClassMax = size_t{64} << 10;
constexpr size_t kMagazineBytes = size_t{512} << 10;
constexpr size_t kMagazineDepth = 64;
constexpr size_t kMagazines = 4;

// A number per thread that is never reused (std::thread::id may be, after a thread ends).
uint64_t ThreadToken() {
  static std::atomic<uint64_t> next{1};
  thread_local const uint64_t token = next.fetch_add(1, std::memory_order_relaxed);
  return token;
}

size_t RoundUp(size_t n, size_t to) {
  return (n + to - 1) / to * to;
}

enum class Backing { kPages, kHugetlb, kThp };

struct Mapping {
  std::byte* base = nullptr;
  size_t length = 0;
  Backing backing = Backing::kPages;
};

Result<Mapping> MapPlain(size_t length, size_t align) {
  // Over-map by `align` and trim, so that a THP-backed chunk starts on a huge-page boundary.
  const size_t extra = align > kPage ? align : 0;
  void* raw =
      ::mmap(nullptr, length + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    return Error(Code::kResourceExhausted,
                 fmt::format("mapping a {} byte buffer chunk: {} (lower the in-flight window or "
                             "the needle size, or raise the memory limit)",
                             length, std::strerror(errno)));
  }
  auto* p = static_cast<std::byte*>(raw);
  if (extra == 0) return Mapping{p, length, Backing::kPages};
  auto* aligned = reinterpret_cast<std::byte*>(RoundUp(reinterpret_cast<uintptr_t>(p), align));
  if (aligned > p) ::munmap(p, static_cast<size_t>(aligned - p));
  const size_t tail = static_cast<size_t>((p + length + extra) - (aligned + length));
  if (tail > 0) ::munmap(aligned + length, tail);
  return Mapping{aligned, length, Backing::kPages};
}

// Maps `length` bytes and touches every page, so gets into it never fault.
Result<Mapping> MapChunk(size_t length, bool hugepages, std::string& note) {
  Mapping m;
  if (hugepages) {
    const size_t rounded = RoundUp(length, kHugePage);
    void* p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (p != MAP_FAILED) {
      m = Mapping{static_cast<std::byte*>(p), rounded, Backing::kHugetlb};
    } else {
      if (note.empty()) {
        note = fmt::format(
            "MAP_HUGETLB of {} bytes failed: {} (no free 2 MiB pages reserved: see "
            "vm.nr_hugepages); using transparent huge pages (madvise) instead",
            rounded, std::strerror(errno));
      }
      SWRDMA_ASSIGN_OR_RETURN(m, MapPlain(rounded, kHugePage));
      // Best effort: with THP "never" this does nothing and the chunk uses 4 KiB pages.
      if (::madvise(m.base, m.length, MADV_HUGEPAGE) == 0) m.backing = Backing::kThp;
    }
  } else {
    SWRDMA_ASSIGN_OR_RETURN(m, MapPlain(RoundUp(length, kPage), kPage));
  }
  std::memset(m.base, 0, m.length);
  return m;
}

}  // namespace

namespace detail {

struct FreeBuffer;

struct PoolChunk {
  Mapping mapping;
  size_t class_size = 0;
  // PoolCore::free[class_size] (map nodes do not move): a release finds its list without hashing.
  std::vector<FreeBuffer>* free_list = nullptr;
  size_t in_use = 0;
  bool orphaned = false;  // the pool is gone: unmap when in_use drops to 0
  std::unique_ptr<Registration> region;
  std::vector<uint8_t> packed_rkey;  // packed on the first Describe
  std::list<PoolChunk*>::iterator lru;
  bool idle = false;  // in PoolCore::idle_lru

  ~PoolChunk() {
    region.reset();  // unregister before unmapping
    if (mapping.base != nullptr) ::munmap(mapping.base, mapping.length);
  }
};

struct FreeBuffer {
  PoolChunk* chunk;
  std::byte* data;
};

struct PoolCore {
  std::mutex mu;
  const Registrar* registrar = nullptr;  // null once the pool is gone
  BufferPoolOptions options;
  std::unordered_map<size_t, std::vector<FreeBuffer>> free;  // size class -> idle buffers
  // The list of the last class acquired: a read loop acquires one class over and over.
  size_t last_class = 0;
  std::vector<FreeBuffer>* last_list = nullptr;
  std::unordered_map<PoolChunk*, std::unique_ptr<PoolChunk>> chunks;
  std::list<PoolChunk*> idle_lru;  // chunks with no buffer out, most recently idle first
  size_t idle_bytes = 0;
  uint64_t hits = 0, misses = 0, evictions = 0;
  uint64_t buffers_out = 0;  // taken from the free lists: in users' hands or in a magazine
  uint64_t hugetlb_chunks = 0, thp_chunks = 0, page_chunks = 0;
  std::string hugepage_note;

  // ---- the owner thread's magazines ----
  // Why: a read loop acquires and releases one small buffer per read, and the mutex's locked
  // instructions were ~11 % of a 4 KiB shared-memory client's CPU (perf). The first thread to
  // acquire becomes the owner: it pops and pushes idle buffers of small classes on a few stacks
  // without locking, and takes the mutex once per refill or overflow. Other threads (a view
  // released elsewhere) and large buffers take the mutex. Buffers in a magazine count as out
  // (their chunk is never idle, never evicted). Only the owner thread ever touches the
  // magazines, even after the pool is gone: chunks still held there are freed with the core.
  // One race is accepted: if the pool is destroyed on another thread at the very moment the owner
  // releases a buffer, the owner may not yet see `closed` and park the buffer in its magazine;
  // the core (and that chunk) then stays allocated until the process ends. Never a use after
  // free: nothing deletes the core while a buffer counts as out.
  struct Magazine {
    size_t cls = 0;  // 0: unused
    size_t depth = 0;
    std::vector<FreeBuffer> buffers;
  };
  std::array<Magazine, kMagazines> magazines;
  size_t next_victim = 0;          // magazine reassigned when all are in use (round robin)
  std::atomic<uint64_t> owner{0};  // ThreadToken() of the owner, 0 until the first Acquire
  std::atomic<bool> closed{false};
  // Written by the owner only (plain load + store, no locked instruction); read by stats().
  std::atomic<uint64_t> magazine_hits{0}, magazine_held{0};

  bool OnOwnerThread() const { return owner.load(std::memory_order_relaxed) == ThreadToken(); }
  // A plain load and store (release: a closing thread that reads magazine_held with acquire sees
  // the owner's magazine writes before it); never a locked instruction.
  static void Bump(std::atomic<uint64_t>& counter, int64_t by) {
    counter.store(counter.load(std::memory_order_relaxed) + static_cast<uint64_t>(by),
                  std::memory_order_release);
  }
  // With mu held: buffers in users' hands.
  uint64_t UsersLocked() const {
    const uint64_t held = magazine_held.load(std::memory_order_acquire);
    return buffers_out - std::min(buffers_out, held);
  }
  Magazine* FindMagazine(size_t cls) {
    for (Magazine& m : magazines)
      if (m.cls == cls) return &m;
    return nullptr;
  }
  // With mu held, on the owner thread: a magazine for `cls`, emptying another one if need be.
  Magazine& ClaimMagazineLocked(size_t cls) {
    Magazine* m = FindMagazine(cls);
    if (m == nullptr) {
      for (Magazine& free_slot : magazines)
        if (free_slot.buffers.empty()) m = &free_slot;
      if (m == nullptr) {
        m = &magazines[next_victim++ % kMagazines];
        DrainLocked(*m, 0);
      }
      m->cls = cls;
      m->depth = std::clamp<size_t>(kMagazineBytes / cls, 4, kMagazineDepth);
    }
    return *m;
  }
  // With mu held, on the owner thread: gives back buffers of `m` until `keep` remain.
  void DrainLocked(Magazine& m, size_t keep) {
    while (m.buffers.size() > keep) {
      const FreeBuffer f = m.buffers.back();
      m.buffers.pop_back();
      Bump(magazine_held, -1);
      ReleaseLocked(f.chunk, f.data);
    }
  }

  // With mu held: the free list of `cls`.
  std::vector<FreeBuffer>& ListFor(size_t cls) {
    if (last_list == nullptr || last_class != cls) {
      last_list = &free[cls];
      last_class = cls;
    }
    return *last_list;
  }
  // With mu held: takes the last buffer of a non-empty free list.
  FreeBuffer TakeLocked(std::vector<FreeBuffer>& list) {
    const FreeBuffer f = list.back();
    list.pop_back();
    MarkBusy(*f.chunk);
    ++f.chunk->in_use;
    ++buffers_out;
    return f;
  }

  void MarkBusy(PoolChunk& c) {
    if (c.idle) {
      idle_lru.erase(c.lru);
      idle_bytes -= c.mapping.length;
      c.idle = false;
    }
  }

  void Evict(PoolChunk* c) {
    auto& list = *c->free_list;
    std::erase_if(list, [c](const FreeBuffer& f) { return f.chunk == c; });
    if (c->idle) {
      idle_lru.erase(c->lru);
      idle_bytes -= c->mapping.length;
    }
    Forget(c);
    ++evictions;
  }

  void Forget(PoolChunk* c) {
    switch (c->mapping.backing) {
      case Backing::kHugetlb:
        --hugetlb_chunks;
        break;
      case Backing::kThp:
        --thp_chunks;
        break;
      case Backing::kPages:
        --page_chunks;
        break;
    }
    chunks.erase(c);
  }

  // Gives a buffer back; deletes the core when the pool is gone and this was the last buffer out.
  // Why no shared_ptr: its locked reference-count increment per buffer stalled on the stores of
  // the get just before it and cost ~10 % of a 4 KiB read loop (perf), like the mutex did.
  static void Release(PoolCore* core, PoolChunk* c, std::byte* data) {
    if (core->ReleaseFast(c, data)) return;
    bool last = false;
    {
      std::lock_guard lock(core->mu);
      core->ReleaseLocked(c, data);
      last = core->closed.load(std::memory_order_relaxed) && core->UsersLocked() == 0;
    }
    if (last) delete core;
  }

  bool ReleaseFast(PoolChunk* c, std::byte* data) {
    if (c->class_size <= kMagazineClassMax && OnOwnerThread() &&
        !closed.load(std::memory_order_acquire)) {
      if (Magazine* m = FindMagazine(c->class_size)) {
        if (m->buffers.size() >= m->depth) {
          std::lock_guard lock(mu);
          DrainLocked(*m, m->depth / 2);
        }
        m->buffers.push_back({c, data});
        Bump(magazine_held, 1);
        return true;
      }
    }
    return false;
  }

  void ReleaseLocked(PoolChunk* c, std::byte* data) {
    --buffers_out;
    --c->in_use;
    if (c->orphaned) {
      if (c->in_use == 0) Forget(c);
      return;
    }
    c->free_list->push_back({c, data});
    if (c->in_use > 0) return;
    idle_lru.push_front(c);
    c->lru = idle_lru.begin();
    c->idle = true;
    idle_bytes += c->mapping.length;
    while (idle_bytes > options.max_idle_bytes && !idle_lru.empty())
      Evict(idle_lru.back());
  }
};

}  // namespace detail

// ---- PooledBuffer ----

PooledBuffer::PooledBuffer(PooledBuffer&& other) noexcept
    : core_(std::exchange(other.core_, nullptr)),
      chunk_(std::exchange(other.chunk_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

PooledBuffer& PooledBuffer::operator=(PooledBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    core_ = std::exchange(other.core_, nullptr);
    chunk_ = std::exchange(other.chunk_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void PooledBuffer::Release() {
  if (core_ != nullptr && chunk_ != nullptr) detail::PoolCore::Release(core_, chunk_, data_);
  core_ = nullptr;
  chunk_ = nullptr;
  data_ = nullptr;
  size_ = 0;
}

const Registration* PooledBuffer::registration() const {
  return chunk_ != nullptr ? chunk_->region.get() : nullptr;
}

Result<RemoteRegion> PooledBuffer::Describe() const {
  if (core_ == nullptr || chunk_ == nullptr) {
    return Error(Code::kInvalidArgument, "describing a pooled buffer: the buffer is empty");
  }
  std::lock_guard lock(core_->mu);
  if (!chunk_->region) {
    return Error(Code::kUnavailable,
                 "describing a pooled buffer: its pool is gone (the buffer is no longer "
                 "registered)");
  }
  if (chunk_->packed_rkey.empty()) {
    SWRDMA_ASSIGN_OR_RETURN(chunk_->packed_rkey, chunk_->region->PackKey());
  }
  return RemoteRegion{
      .address = address(), .length = size_, .rkey = chunk_->packed_rkey, .generation = 0};
}

// ---- BufferPool ----

Result<BufferPool> BufferPool::Create(const Registrar& registrar,
                                      const BufferPoolOptions& options) {
  auto* core = new detail::PoolCore();  // deleted by Shutdown or by the last buffer's release
  core->registrar = &registrar;
  core->options = options;
  return BufferPool(core);
}

BufferPool& BufferPool::operator=(BufferPool&& other) noexcept {
  if (this != &other) {
    Shutdown();
    core_ = std::exchange(other.core_, nullptr);
  }
  return *this;
}

BufferPool::~BufferPool() {
  Shutdown();
}

void BufferPool::Shutdown() {
  if (core_ == nullptr) return;
  bool last = false;
  {
    std::lock_guard lock(core_->mu);
    // The owner's magazines are left alone (only the owner touches them): their chunks stay
    // mapped, orphaned, until the core goes with the last buffer. A release on the owner thread
    // that sees `closed` takes the locked path.
    core_->closed.store(true, std::memory_order_release);
    core_->registrar = nullptr;
    core_->free.clear();
    core_->last_list = nullptr;
    core_->idle_lru.clear();
    core_->idle_bytes = 0;
    for (auto it = core_->chunks.begin(); it != core_->chunks.end();) {
      detail::PoolChunk& c = *it->second;
      c.region.reset();  // the registrar may go right after the pool: unregister now
      if (c.in_use == 0) {
        it = core_->chunks.erase(it);
      } else {
        c.orphaned = true;
        ++it;
      }
    }
    last = core_->UsersLocked() == 0;
  }
  // Only after the lock is released: the core and its mutex go when no buffer is out; else
  // with the last one (PoolCore::Release).
  if (last) delete core_;
  core_ = nullptr;
}

size_t BufferPool::SizeClass(size_t bytes) {
  const size_t pages = std::max<size_t>(1, (bytes + kPage - 1) / kPage);
  if (pages <= 4) return pages * kPage;
  const unsigned msb = static_cast<unsigned>(std::bit_width(pages)) - 1;
  const size_t step = size_t{1} << (msb - 2);  // four classes per power of two
  return RoundUp(pages, step) * kPage;
}

Result<PooledBuffer> BufferPool::Acquire(size_t bytes) {
  if (bytes == 0) {
    return Error(Code::kInvalidArgument, "acquiring a pooled buffer of 0 bytes");
  }
  detail::PoolCore& core = *core_;
  const size_t cls = SizeClass(bytes);
  const bool small = cls <= kMagazineClassMax;
  if (small && core.OnOwnerThread()) {
    if (auto* m = core.FindMagazine(cls); m != nullptr && !m->buffers.empty()) {
      const detail::FreeBuffer f = m->buffers.back();
      m->buffers.pop_back();
      detail::PoolCore::Bump(core.magazine_held, -1);
      detail::PoolCore::Bump(core.magazine_hits, 1);
      return PooledBuffer(core_, f.chunk, f.data, cls);
    }
  }
  std::lock_guard lock(core.mu);
  if (core.owner.load(std::memory_order_relaxed) == 0) {
    core.owner.store(ThreadToken(), std::memory_order_relaxed);
  }
  auto& list = core.ListFor(cls);
  if (list.empty()) {
    ++core.misses;
    const size_t length = std::max(cls, kChunkBytes);
    SWRDMA_ASSIGN_OR_RETURN(Mapping m,
                            MapChunk(length, core.options.hugepages, core.hugepage_note));
    auto chunk = std::make_unique<detail::PoolChunk>();
    chunk->mapping = m;
    chunk->class_size = cls;
    chunk->free_list = &list;
    auto region = core.registrar->Register(m.base, m.length, core.options.access);
    if (!region) {
      return Error(region.error().WithContext(
          fmt::format("registering a {} byte buffer chunk for gets", m.length)));
    }
    chunk->region = std::move(*region);
    const size_t count = m.length / cls;
    // Pushed in reverse so that buffers are handed out in address order.
    for (size_t i = count; i-- > 0;)
      list.push_back({chunk.get(), m.base + i * cls});
    switch (m.backing) {
      case Backing::kHugetlb:
        ++core.hugetlb_chunks;
        break;
      case Backing::kThp:
        ++core.thp_chunks;
        break;
      case Backing::kPages:
        ++core.page_chunks;
        break;
    }
    core.chunks.emplace(chunk.get(), std::move(chunk));
  } else {
    ++core.hits;
  }
  const detail::FreeBuffer f = core.TakeLocked(list);
  if (small && core.OnOwnerThread()) {
    // Refill the owner's magazine to half its depth from idle buffers (never a new chunk), so
    // that the next acquires and releases of this class need no lock.
    auto& m = core.ClaimMagazineLocked(cls);
    while (m.buffers.size() < m.depth / 2 && !list.empty()) {
      m.buffers.push_back(core.TakeLocked(list));
      detail::PoolCore::Bump(core.magazine_held, 1);
    }
  }
  return PooledBuffer(core_, f.chunk, f.data, cls);
}

BufferPoolStats BufferPool::stats() const {
  BufferPoolStats s;
  if (core_ == nullptr) return s;
  std::lock_guard lock(core_->mu);
  const detail::PoolCore& c = *core_;
  s.hits = c.hits + c.magazine_hits.load(std::memory_order_relaxed);
  s.misses = c.misses;
  s.evictions = c.evictions;
  s.chunks = c.chunks.size();
  for (const auto& [ptr, chunk] : c.chunks)
    s.registered_bytes += chunk->region ? chunk->mapping.length : 0;
  s.buffers_out =
      c.buffers_out - std::min(c.buffers_out, c.magazine_held.load(std::memory_order_relaxed));
  const int kinds = (c.hugetlb_chunks > 0) + (c.thp_chunks > 0) + (c.page_chunks > 0);
  s.hugepages = kinds > 1              ? "mixed"
                : c.hugetlb_chunks > 0 ? "hugetlb"
                : c.thp_chunks > 0     ? "thp"
                : c.options.hugepages  ? "requested"
                                       : "off";
  s.hugepage_note = c.hugepage_note;
  return s;
}

}  // namespace swrdma::rdma
