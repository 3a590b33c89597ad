// Reading a `.idx` (or its new tail) for the needle index: which entries may be published yet,
// and the last-wins replay of them. No RocksDB here, so it is testable on its own.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <vector>

#include "protocol/needle.h"
#include "protocol/status.h"
#include "volume/idx_file.h"

namespace swrdma {

// End of the record `e` points at. Deletions point at their size-0 tombstone record, or at
// nothing (offset 0, end 0).
uint64_t IdxEntryRecordEnd(const IdxEntry& e, NeedleVersion version);

struct IdxTail {
  std::vector<IdxEntry> entries;   // publishable entries, in `.idx` order
  uint64_t applied_bytes = 0;      // `.idx` bytes they cover, starting where the read started
  uint64_t held_back_entries = 0;  // first entry whose record is not all in the `.dat`, and after
  uint64_t held_back_bytes = 0;
  uint64_t damaged_tail_bytes = 0;  // trailing bytes that are not a whole entry
  uint64_t record_end = 0;          // highest record end among `entries`
};

// Reads every whole entry of `idx` from byte `from` (a multiple of the entry size) to its end.
// `progress(done, total)` is called every ~1 M entries. kIOError naming the file on failure.
Result<IdxTail> ReadIdxTail(const std::filesystem::path& idx, OffsetWidth width, uint64_t from,
                            const std::function<void(uint64_t, uint64_t)>& progress = {});

// Keeps the entries in order up to the first whose record does not fit in `dat_size` bytes of
// `.dat`; it and everything after are held back (an index entry must not overtake the data it
// names; the volume server writes the `.dat` first, so read the `.idx` before sizing the `.dat`).
// Deletions are never held back, as SeaweedFS applies them without reading the `.dat`: a
// truncation that cut a tombstone record must not bring its needle back.
void HoldBackUnwritten(IdxTail& tail, OffsetWidth width, uint64_t dat_size, NeedleVersion version);

// 4-byte offsets count 8-byte units, so they reach 32 GiB (2^32 * 8) and then wrap. A volume
// server never starts a data record past that, but an older one did, and tombstones may: weed's
// reader (needle_read.go ReadData) then retries at offset + 32 GiB whenever the header at the
// stored offset has another size. The index decides that once, when it takes the entry in:
// every write entry of a 4-byte volume whose record could also lie 32 GiB further inside
// `dat_size` has its header's size read at the stored offset (`size_at`); a different size
// (a hole, another needle) moves the entry to offset + 32 GiB when the size there matches, as
// weed's retry would find it. An entry neither place confirms stays (its reads fail their header
// check, never return other bytes). Returns how many entries moved. 5-byte volumes: nothing.
inline constexpr uint64_t kFourByteOffsetWrap = (uint64_t{1} << 32) * kIdxOffsetUnit;
// The size field of the record header at `offset` of the `.dat`; nullopt if it cannot be read.
using RecordSizeAt = std::function<std::optional<uint32_t>(uint64_t offset)>;
uint64_t UnwrapOffsets(std::vector<IdxEntry>& entries, OffsetWidth width, uint64_t dat_size,
                       NeedleVersion version, const RecordSizeAt& size_at);

// Replays `entries` (in `.idx` order) into one entry per needle id, the last one winning, sorted
// by needle id. Linear in the entries, plus a stable radix sort of those that do not raise the
// running maximum id (few: ids are mostly increasing within a volume).
void ReplayLastWins(std::vector<IdxEntry>& entries);

}  // namespace swrdma
