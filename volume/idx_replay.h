// Reading a `.idx` (or its new tail) for the needle index: which entries may be published yet,
// and the last-wins replay of them. No RocksDB here, so it is testable on its own.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
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

// Replays `entries` (in `.idx` order) into one entry per needle id, the last one winning, sorted
// by needle id. Linear in the entries, plus a stable radix sort of those that do not raise the
// running maximum id (few: ids are mostly increasing within a volume).
void ReplayLastWins(std::vector<IdxEntry>& entries);

}  // namespace swrdma
