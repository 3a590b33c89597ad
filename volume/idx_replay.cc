#include "volume/idx_replay.h"

#include <algorithm>
#include <array>
#include <system_error>

namespace swrdma {

uint64_t IdxEntryRecordEnd(const IdxEntry& e, NeedleVersion version) {
  if (e.offset == 0) return 0;
  const uint32_t size = e.is_deletion() ? 0 : e.size;
  return e.offset + NeedleRecordLength(size, version);
}

Result<IdxTail> ReadIdxTail(const std::filesystem::path& idx, OffsetWidth width, uint64_t from,
                            const std::function<void(uint64_t, uint64_t)>& progress) {
  constexpr uint64_t kProgressEvery = 1 << 20;
  const uint64_t entry_size = IdxEntrySize(width);
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(idx, ec);
  const uint64_t expected = (!ec && file_size > from) ? (file_size - from) / entry_size : 0;

  IdxTail tail;
  tail.entries.reserve(expected);
  if (progress) progress(0, expected);
  auto scanned = ScanIdxFile(idx, width, from, [&](const IdxEntry& e) {
    tail.entries.push_back(e);
    if (progress && tail.entries.size() % kProgressEvery == 0) {
      progress(tail.entries.size(), std::max<uint64_t>(tail.entries.size(), expected));
    }
  });
  if (!scanned) return Error(scanned.error());
  tail.applied_bytes = tail.entries.size() * entry_size;
  tail.damaged_tail_bytes = scanned->damaged_tail_bytes;
  if (progress) progress(tail.entries.size(), tail.entries.size());
  return tail;
}

uint64_t UnwrapOffsets(std::vector<IdxEntry>& entries, OffsetWidth width, uint64_t dat_size,
                       NeedleVersion version, const RecordSizeAt& size_at) {
  if (width != OffsetWidth::k4 || dat_size <= kFourByteOffsetWrap) return 0;
  uint64_t moved = 0;
  for (IdxEntry& e : entries) {
    if (e.is_deletion() || e.offset >= kFourByteOffsetWrap) continue;
    const uint64_t wrapped = e.offset + kFourByteOffsetWrap;
    if (wrapped + NeedleRecordLength(e.size, version) > dat_size) continue;
    if (size_at(e.offset) == e.size) continue;  // weed reads it where the entry says
    if (size_at(wrapped) != e.size) continue;
    e.offset = wrapped;
    ++moved;
  }
  return moved;
}

void HoldBackUnwritten(IdxTail& tail, OffsetWidth width, uint64_t dat_size, NeedleVersion version) {
  size_t keep = 0;
  uint64_t end = tail.record_end;
  for (; keep < tail.entries.size(); ++keep) {
    // A deletion never waits for its tombstone record: SeaweedFS applies .idx deletions without
    // looking at the .dat, and a truncation that cut the tombstone must not bring the needle back.
    const uint64_t e = IdxEntryRecordEnd(tail.entries[keep], version);
    if (e > dat_size) {
      if (tail.entries[keep].is_deletion()) continue;
      break;
    }
    end = std::max(end, e);
  }
  const uint64_t held = tail.entries.size() - keep;
  tail.entries.resize(keep);
  tail.record_end = end;
  tail.held_back_entries += held;
  tail.held_back_bytes += held * IdxEntrySize(width);
  tail.applied_bytes -= held * IdxEntrySize(width);
}

namespace {

// Stable LSD radix sort by needle id, one pass per byte that actually varies (ids of one volume
// usually share their high bytes, so 10 M entries take 3-4 passes instead of 8).
void RadixSortByNeedleId(std::vector<IdxEntry>& v) {
  std::array<std::array<size_t, 256>, 8> counts{};
  for (const IdxEntry& e : v) {
    for (int b = 0; b < 8; ++b)
      ++counts[b][(e.needle_id >> (8 * b)) & 0xFF];
  }
  std::vector<IdxEntry> scratch(v.size());
  for (int b = 0; b < 8; ++b) {
    auto& c = counts[b];
    if (std::ranges::any_of(c, [&](size_t n) { return n == v.size(); })) continue;  // constant
    size_t sum = 0;
    for (size_t& n : c) {
      const size_t here = n;
      n = sum;
      sum += here;
    }
    for (const IdxEntry& e : v)
      scratch[c[(e.needle_id >> (8 * b)) & 0xFF]++] = e;
    v.swap(scratch);
  }
}

}  // namespace

namespace {

// Keeps the last entry of each run of equal ids (runs are in `.idx` order after a stable sort).
void KeepLastOfRuns(std::vector<IdxEntry>& v) {
  size_t out = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i + 1 < v.size() && v[i + 1].needle_id == v[i].needle_id) continue;
    v[out++] = v[i];
  }
  v.resize(out);
}

}  // namespace

void ReplayLastWins(std::vector<IdxEntry>& entries) {
  // Needle ids come from the master's sequencer, so a volume's `.idx` is an increasing run with
  // a few percent of overwrites and deletions of earlier ids. Split it in one pass into the
  // entries that raise the running maximum ("new": sorted, distinct, kept in place at the front)
  // and the rest ("late"). A needle's "new" entry, if any, precedes all its "late" ones (once
  // an id is at or below the maximum it stays so), so the last "late" entry of an id wins over
  // its "new" one. Only the late entries need sorting.
  std::vector<IdxEntry> late;
  size_t fresh = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (fresh == 0 || entries[i].needle_id > entries[fresh - 1].needle_id) {
      entries[fresh++] = entries[i];
    } else {
      late.push_back(entries[i]);
    }
  }
  if (late.empty()) {
    entries.resize(fresh);
    return;
  }
  RadixSortByNeedleId(late);
  KeepLastOfRuns(late);

  // Merge both sorted lists from the back into `entries` (it has room: the late entries came out
  // of it); ids present in both take the late entry. Duplicates leave a gap, closed afterwards.
  size_t a = fresh, b = late.size(), out = fresh + late.size();
  while (b > 0) {
    if (a > 0 && entries[a - 1].needle_id > late[b - 1].needle_id) {
      entries[--out] = entries[--a];
    } else {
      if (a > 0 && entries[a - 1].needle_id == late[b - 1].needle_id) --a;  // overridden
      entries[--out] = late[--b];
    }
  }
  // Now [0, a) holds the untouched smallest fresh entries and [out, fresh + late.size()) the
  // merged rest; `out - a` slots between them are the gap.
  if (out != a) {
    std::move(entries.begin() + out, entries.begin() + fresh + late.size(), entries.begin() + a);
  }
  entries.resize(a + (fresh + late.size() - out));
}

}  // namespace swrdma
