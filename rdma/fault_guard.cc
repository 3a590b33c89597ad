#include "rdma/fault_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include <fmt/format.h>

namespace swrdma::rdma {
namespace {

// Slots live in chunks allocated on demand and never freed, so the signal handler reads them
// without locks while Guard adds more: one per exported mapping (a `.dat`, an EC shard, an
// `.ecx`), and a volume server may hold tens of thousands of those. 256 chunks of 4096: about
// a million guarded ranges, 24 MiB of slots if all are used, 96 KiB for the first chunk.
constexpr int kChunkSlots = 4096;
constexpr int kChunks = 256;
constexpr int kSlots = kChunkSlots * kChunks;

// Read from the signal handler: plain atomics only.
struct Slot {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};  // 0: free
  std::atomic<bool> faulted{false};
};
std::array<std::atomic<Slot*>, kChunks> g_chunks{};
// Slots handed out so far reach below this index; the handler scans no further.
std::atomic<int> g_high{0};

Slot* SlotAt(int i) {
  Slot* chunk = g_chunks[i / kChunkSlots].load(std::memory_order_acquire);
  return chunk == nullptr ? nullptr : &chunk[i % kChunkSlots];
}
std::atomic<uint64_t> g_patched{0};
std::mutex g_mu;  // Guard/Unguard/tombstones, never taken by the handler

struct sigaction g_prev_bus{};
struct sigaction g_prev_segv{};
std::once_flag g_install_once;
Status g_install_status;

struct TombstoneRange {
  std::chrono::steady_clock::time_point since;
  void* base;
  size_t length;
};
std::vector<TombstoneRange> g_tombstones;  // guarded by g_mu

void Chain(const struct sigaction& prev, int sig, siginfo_t* info, void* ctx) {
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction) {
      prev.sa_sigaction(sig, info, ctx);
      return;
    }
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  // Default action: restore it and return; the faulting instruction runs again and the kernel
  // delivers the signal with its default effect (core dump).
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
}

void OnFault(int sig, siginfo_t* info, void* ctx) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  const int high = g_high.load(std::memory_order_acquire);
  for (int i = 0; i < high; ++i) {
    Slot* slot = SlotAt(i);
    if (slot == nullptr) break;
    Slot& s = *slot;
    const uintptr_t end = s.end.load(std::memory_order_acquire);
    if (end == 0 || addr >= end || addr < s.begin.load(std::memory_order_relaxed)) continue;
    const uintptr_t page = addr & ~(static_cast<uintptr_t>(sysconf(_SC_PAGESIZE)) - 1);
    void* p = mmap(reinterpret_cast<void*>(page), static_cast<size_t>(sysconf(_SC_PAGESIZE)),
                   PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) break;  // cannot patch: fall through to the previous handler
    s.faulted.store(true, std::memory_order_release);
    g_patched.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Chain(sig == SIGBUS ? g_prev_bus : g_prev_segv, sig, info, ctx);
}

}  // namespace

Status FaultGuard::Install() {
  std::call_once(g_install_once, [] {
    struct sigaction sa{};
    sa.sa_sigaction = OnFault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &g_prev_bus) != 0 || sigaction(SIGSEGV, &sa, &g_prev_segv) != 0) {
      g_install_status =
          Status(Code::kInternal,
                 fmt::format("installing the SIGBUS/SIGSEGV guard: {}", std::strerror(errno)));
    }
  });
  return g_install_status;
}

int FaultGuard::Guard(const void* base, size_t length) {
  if (length == 0) return -1;
  std::lock_guard lock(g_mu);
  for (int i = 0; i < kSlots; ++i) {
    if (i % kChunkSlots == 0 &&
        g_chunks[i / kChunkSlots].load(std::memory_order_relaxed) == nullptr) {
      // Published before g_high covers it, so the handler never reads a half-built chunk.
      g_chunks[i / kChunkSlots].store(new Slot[kChunkSlots], std::memory_order_release);
    }
    Slot& s = *SlotAt(i);
    if (s.end.load(std::memory_order_relaxed) != 0) continue;
    s.faulted.store(false, std::memory_order_relaxed);
    s.begin.store(reinterpret_cast<uintptr_t>(base), std::memory_order_relaxed);
    s.end.store(reinterpret_cast<uintptr_t>(base) + length, std::memory_order_release);
    if (i >= g_high.load(std::memory_order_relaxed)) {
      g_high.store(i + 1, std::memory_order_release);
    }
    return i;
  }
  return -1;
}

void FaultGuard::Unguard(int slot) {
  if (slot < 0 || slot >= kSlots) return;
  std::lock_guard lock(g_mu);
  Slot* s = SlotAt(slot);
  if (s == nullptr) return;
  s->end.store(0, std::memory_order_release);
  s->begin.store(0, std::memory_order_relaxed);
}

bool FaultGuard::TakeFaulted(int slot) {
  if (slot < 0 || slot >= kSlots) return false;
  Slot* s = SlotAt(slot);
  return s != nullptr && s->faulted.exchange(false, std::memory_order_acq_rel);
}

int FaultGuard::capacity() {
  return kSlots;
}

uint64_t FaultGuard::patched_faults() {
  return g_patched.load(std::memory_order_relaxed);
}

Status FaultGuard::Tombstone(void* base, size_t length) {
  if (base == nullptr || length == 0) return Status::Ok();
  void* p =
      mmap(base, length, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::munmap(base, length);
    return Status(Code::kIOError,
                  fmt::format("replacing a retired mapping by zeros: {}", std::strerror(err)));
  }
  std::lock_guard lock(g_mu);
  g_tombstones.push_back({std::chrono::steady_clock::now(), base, length});
  return Status::Ok();
}

size_t FaultGuard::ReleaseTombstones(std::chrono::steady_clock::duration horizon) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(g_mu);
  size_t released = 0;
  std::erase_if(g_tombstones, [&](const TombstoneRange& t) {
    if (now - t.since < horizon) return false;
    ::munmap(t.base, t.length);
    ++released;
    return true;
  });
  return released;
}

size_t FaultGuard::tombstones() {
  std::lock_guard lock(g_mu);
  return g_tombstones.size();
}

}  // namespace swrdma::rdma
