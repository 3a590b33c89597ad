#include "agent/heap.h"

#include <malloc.h>

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
