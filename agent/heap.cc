#include "agent/heap.h"

#include <malloc.h>

#include <atomic>
#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define SWRDMA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SWRDMA_ASAN 1
#endif
#endif

#ifdef SWRDMA_ASAN
#include <sanitizer/lsan_interface.h>
// In both runtimes (gcc's libasan, clang's); gcc 12 ships no sanitizer/allocator_interface.h.
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace swrdma::agent {
namespace {
std::atomic<bool> ucx_left_alive{false};
}  // namespace

void NoteUcxLeftAlive() {
  ucx_left_alive.store(true);
}

bool AddressSanitizerBuild() {
#ifdef SWRDMA_ASAN
  return true;
#else
  return false;
#endif
}

uint64_t HeapInUseBytes() {
#ifdef SWRDMA_ASAN
  return __sanitizer_get_current_allocated_bytes();
#else
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
#endif
}

void CheckLeaksBeforeExit() {
#ifdef SWRDMA_ASAN
  __lsan_do_leak_check();
#endif
}

}  // namespace swrdma::agent

#ifdef SWRDMA_ASAN
// LeakSanitizer asks for these when it first checks (at exit, or CheckLeaksBeforeExit), so they
// apply only to a process that left UCX alive on purpose. Module names, not functions: UCX is
// built without frame pointers and LSan's stacks stop inside it.
extern "C" __attribute__((visibility("default"), used)) const char* __lsan_default_suppressions() {
  return swrdma::agent::ucx_left_alive.load()
             ? "leak:libucs.so\nleak:libuct.so\nleak:libucp.so\nleak:libucm.so\n"
             : "";
}
#endif
