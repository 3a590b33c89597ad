// What the allocator itself knows about the agent's heap, and the leak check for processes that
// end with _exit. In AddressSanitizer builds (make asan, make sanitize) these ask the sanitizer's
// allocator: its quarantine holds freed blocks back (RSS grows though nothing leaks), so RSS
// alone cannot tell a leak from the quarantine there (tests/e2e/agent_resources_test.sh).
#pragma once

#include <cstdint>

namespace swrdma::agent {

// True in AddressSanitizer builds (gcc -fsanitize=address or clang's).
bool AddressSanitizerBuild();

// Bytes handed out by malloc/new and not freed yet: the sanitizer allocator's count in ASan
// builds (freed blocks in its quarantine are not counted), glibc's mallinfo2() otherwise
// (uordblks + hblkhd over all arenas; freed blocks cached per thread count as in use).
uint64_t HeapInUseBytes();

// In ASan builds: runs LeakSanitizer now (it fails the process with its report when it finds a
// leak, honouring ASAN_OPTIONS=detect_leaks=0). The data-plane child ends with _exit, which skips
// the check LSan would otherwise run at exit. Does nothing in other builds.
void CheckLeaksBeforeExit();

}  // namespace swrdma::agent
