#include "rdma/buffer_pool.h"

#include <sys/mman.h>

#include <algorithm>
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
  std::optional<MemoryRegion> region;
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
  const UcxContext* context = nullptr;  // null once the pool is gone
  BufferPoolOptions options;
  std::unordered_map<size_t, std::vector<FreeBuffer>> free;  // size class -> idle buffers
  // The list of the last class acquired: a read loop acquires one class over and over.
  size_t last_class = 0;
  std::vector<FreeBuffer>* last_list = nullptr;
  std::unordered_map<PoolChunk*, std::unique_ptr<PoolChunk>> chunks;
  std::list<PoolChunk*> idle_lru;  // chunks with no buffer out, most recently idle first
  size_t idle_bytes = 0;
  uint64_t hits = 0, misses = 0, evictions = 0, buffers_out = 0;
  uint64_t hugetlb_chunks = 0, thp_chunks = 0, page_chunks = 0;
  std::string hugepage_note;

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

  void Release(PoolChunk* c, std::byte* data) {
    std::lock_guard lock(mu);
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
    : core_(std::move(other.core_)),
      chunk_(std::exchange(other.chunk_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

PooledBuffer& PooledBuffer::operator=(PooledBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    core_ = std::move(other.core_);
    chunk_ = std::exchange(other.chunk_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void PooledBuffer::Release() {
  if (core_ && chunk_ != nullptr) core_->Release(chunk_, data_);
  core_.reset();
  chunk_ = nullptr;
  data_ = nullptr;
  size_ = 0;
}

ucp_mem_h PooledBuffer::memh() const {
  return chunk_ != nullptr && chunk_->region ? chunk_->region->get() : nullptr;
}

Result<RemoteRegion> PooledBuffer::Describe() const {
  if (!core_ || chunk_ == nullptr) {
    return Error(Code::kInvalidArgument, "describing a pooled buffer: the buffer is empty");
  }
  std::lock_guard lock(core_->mu);
  if (!chunk_->region) {
    return Error(Code::kUnavailable,
                 "describing a pooled buffer: its pool is gone (the buffer is no longer "
                 "registered)");
  }
  if (chunk_->packed_rkey.empty()) {
    SWRDMA_ASSIGN_OR_RETURN(chunk_->packed_rkey, chunk_->region->PackRkey());
  }
  return RemoteRegion{
      .address = address(), .length = size_, .rkey = chunk_->packed_rkey, .generation = 0};
}

// ---- BufferPool ----

Result<BufferPool> BufferPool::Create(const UcxContext& context, const BufferPoolOptions& options) {
  if (context.get() == nullptr) {
    return Error(Code::kInvalidArgument, "creating a buffer pool: the UCX context is empty");
  }
  auto core = std::make_shared<detail::PoolCore>();
  core->context = &context;
  core->options = options;
  return BufferPool(std::move(core));
}

BufferPool& BufferPool::operator=(BufferPool&& other) noexcept {
  if (this != &other) {
    Shutdown();
    core_ = std::move(other.core_);
  }
  return *this;
}

BufferPool::~BufferPool() {
  Shutdown();
}

void BufferPool::Shutdown() {
  if (!core_) return;
  std::lock_guard lock(core_->mu);
  core_->context = nullptr;
  core_->free.clear();
  core_->last_list = nullptr;
  core_->idle_lru.clear();
  core_->idle_bytes = 0;
  for (auto it = core_->chunks.begin(); it != core_->chunks.end();) {
    detail::PoolChunk& c = *it->second;
    c.region.reset();  // the context may go right after the pool: unregister now
    if (c.in_use == 0) {
      it = core_->chunks.erase(it);
    } else {
      c.orphaned = true;
      ++it;
    }
  }
  core_.reset();
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
  std::lock_guard lock(core.mu);
  if (core.last_list == nullptr || core.last_class != cls) {
    core.last_list = &core.free[cls];
    core.last_class = cls;
  }
  auto& list = *core.last_list;
  if (list.empty()) {
    ++core.misses;
    const size_t length = std::max(cls, kChunkBytes);
    SWRDMA_ASSIGN_OR_RETURN(Mapping m,
                            MapChunk(length, core.options.hugepages, core.hugepage_note));
    auto chunk = std::make_unique<detail::PoolChunk>();
    chunk->mapping = m;
    chunk->class_size = cls;
    chunk->free_list = &list;
    auto region = MemoryRegion::Map(*core.context, m.base, m.length, core.options.access);
    if (!region) {
      return Error(region.error().WithContext(
          fmt::format("registering a {} byte buffer chunk for gets", m.length)));
    }
    chunk->region.emplace(std::move(*region));
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
  const detail::FreeBuffer f = list.back();
  list.pop_back();
  core.MarkBusy(*f.chunk);
  ++f.chunk->in_use;
  ++core.buffers_out;
  return PooledBuffer(core_, f.chunk, f.data, cls);
}

BufferPoolStats BufferPool::stats() const {
  BufferPoolStats s;
  if (!core_) return s;
  std::lock_guard lock(core_->mu);
  const detail::PoolCore& c = *core_;
  s.hits = c.hits;
  s.misses = c.misses;
  s.evictions = c.evictions;
  s.chunks = c.chunks.size();
  for (const auto& [ptr, chunk] : c.chunks)
    s.registered_bytes += chunk->region ? chunk->mapping.length : 0;
  s.buffers_out = c.buffers_out;
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
