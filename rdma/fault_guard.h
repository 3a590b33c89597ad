// FaultGuard: keeps an exporting process alive when memory it exports stops being backed.
//
// With software-emulated RMA (tcp, shared memory) the exporting process's own CPU copies the bytes
// of every get a peer posts. If the file behind an exported mapping is truncated, or a peer asks
// for an address past the end of the file, that copy faults (SIGBUS) and would kill the agent. The
// guard catches SIGBUS/SIGSEGV inside registered ranges, maps a zero page over the faulting page
// and lets the access finish: the reader gets zeros, which never pass a needle's header and CRC
// checks, and the range is flagged so its owner re-exports the file. Faults anywhere else go to the
// previous handler (or the default action), exactly as without the guard.
//
// Retired mappings are turned into tombstones: the file pages are replaced by an anonymous
// read-only zero mapping at the same address, so the file is released (no "(deleted)" mapping
// lingers) but a late reader with a stale address still reads zeros instead of crashing us.
// Tombstones are unmapped after a horizon.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "protocol/status.h"

namespace swrdma::rdma {

class FaultGuard {
 public:
  // Installs the SIGBUS and SIGSEGV handlers once per process (idempotent, thread-safe).
  static Status Install();

  // Guards [base, base + length). Returns a slot, or -1 when all capacity() slots are taken (the
  // range is then unguarded; the caller logs it). Thread-safe, not async-signal-safe.
  static int Guard(const void* base, size_t length);
  static int capacity();
  static void Unguard(int slot);

  // True (once) if a fault was patched inside the slot's range since the last call.
  static bool TakeFaulted(int slot);
  // Faults patched since the process started.
  static uint64_t patched_faults();

  // Replaces [base, base + length) (page aligned, currently mapped) by a read-only anonymous
  // zero mapping and remembers it; ReleaseTombstones unmaps those older than `horizon`.
  static Status Tombstone(void* base, size_t length);
  static size_t ReleaseTombstones(std::chrono::steady_clock::duration horizon);
  static size_t tombstones();
};

}  // namespace swrdma::rdma
