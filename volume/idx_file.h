// `.idx` files: the volume server's append-only log of (needle id, offset, size).
//   16-byte entries: needle id u64 BE | offset u32 BE (units of 8 bytes) | size u32 BE
//   17-byte entries (5-byte-offset builds): needle id | offset low 32 bits BE | offset bits 32..39
//                                           | size
// Replay in order; a later entry overrides an earlier one; size 0xFFFFFFFF (any negative int32)
// or offset 0 deletes the key. A length that is not a multiple of the entry size means a
// damaged tail: the whole entries before it are used and the damage is reported.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <vector>

#include "protocol/status.h"

namespace swrdma {

enum class OffsetWidth : uint8_t { k4 = 4, k5 = 5 };

inline constexpr size_t IdxEntrySize(OffsetWidth w) {
  return w == OffsetWidth::k5 ? 17 : 16;
}

// Offsets are stored in units of 8 bytes (needle records are 8-byte aligned).
inline constexpr uint64_t kIdxOffsetUnit = 8;

struct IdxEntry {
  uint64_t needle_id = 0;
  uint64_t offset = 0;  // in bytes (the stored value times 8)
  uint32_t size = 0;    // raw size field; see is_deletion()

  // Tombstone: negative size as int32 (0xFFFFFFFF is what SeaweedFS writes) or offset 0.
  bool is_deletion() const { return static_cast<int32_t>(size) < 0 || offset == 0; }
  friend bool operator==(const IdxEntry&, const IdxEntry&) = default;
};

// Decodes one entry from exactly IdxEntrySize(w) bytes.
IdxEntry DecodeIdxEntry(const uint8_t* p, OffsetWidth w);
// Appends the encoding of `e` to `out`; `e.offset` must be a multiple of 8.
void EncodeIdxEntry(const IdxEntry& e, OffsetWidth w, std::vector<uint8_t>& out);

struct IdxScanStats {
  uint64_t entries = 0;             // whole entries visited
  uint64_t deletions = 0;           // of which tombstones
  uint64_t consumed_bytes = 0;      // bytes covered by whole entries
  uint64_t damaged_tail_bytes = 0;  // trailing bytes that do not form a whole entry
};

// Visits every whole entry of `bytes` in order. Never fails: a damaged tail is counted in the
// stats (callers report it; an appending writer may simply not have finished the entry yet).
IdxScanStats ScanIdx(std::span<const uint8_t> bytes, OffsetWidth w,
                     const std::function<void(const IdxEntry&)>& visit);

// Reads `path` from byte `from` (a multiple of the entry size) to its current end and visits the
// entries in chunks, so multi-GB files are not loaded whole. Only the length seen at open is read
// (stats.consumed_bytes tells where to continue). kIOError naming the path on failure;
// kInvalidArgument if `from` is not a multiple of the entry size or lies past the end (the file
// was truncated or replaced, e.g. by a vacuum: rescan from 0).
Result<IdxScanStats> ScanIdxFile(const std::filesystem::path& path, OffsetWidth w, uint64_t from,
                                 const std::function<void(const IdxEntry&)>& visit);

}  // namespace swrdma
