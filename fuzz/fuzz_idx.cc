// Fuzzes `.idx` parsing and replay (volume/idx_file.h, volume/idx_replay.h): what the agent runs on
// every volume's index file at start-up and on each append. Input: 1 selector byte (bit 0:
// 5-byte offsets; bits 1-2: needle version), 8 bytes of `.dat` size (little-endian), then the
// `.idx` bytes. Checked against simple reference models: byte-exact entry round trip, the file
// reader agreeing with the in-memory scan, hold-back keeping a prefix, last-wins replay equal to a
// std::map replay.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <source_location>
#include <span>
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "volume/idx_file.h"
#include "volume/idx_replay.h"

namespace {

using swrdma::fuzz::Check;

std::filesystem::path g_idx_path;

void RemoveScratch() {
  std::error_code ec;
  std::filesystem::remove_all(g_idx_path.parent_path(), ec);
}

void CheckFileReader(std::span<const uint8_t> idx, swrdma::OffsetWidth width,
                     const std::vector<swrdma::IdxEntry>& scanned,
                     const swrdma::IdxScanStats& stats) {
  using namespace swrdma;
  const size_t entry_size = IdxEntrySize(width);
  if (FILE* f = std::fopen(g_idx_path.c_str(), "wb")) {
    Check(std::fwrite(idx.data(), 1, idx.size(), f) == idx.size());
    std::fclose(f);
  } else {
    std::abort();
  }
  auto tail = ReadIdxTail(g_idx_path, width, 0);
  Check(tail.has_value());
  Check(tail->entries == scanned);
  Check(tail->damaged_tail_bytes == stats.damaged_tail_bytes);
  Check(tail->applied_bytes == stats.consumed_bytes);
  // Starting mid-file at an entry boundary reads the rest; elsewhere is refused.
  if (scanned.size() >= 2) {
    auto rest = ReadIdxTail(g_idx_path, width, entry_size);
    Check(rest.has_value() && rest->entries.size() == scanned.size() - 1);
  }
  Check(!ReadIdxTail(g_idx_path, width, 3).has_value());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "swrdma-fuzz-idx.XXXXXX").string();
  if (!mkdtemp(tmpl.data())) {
    std::perror("mkdtemp");
    std::abort();
  }
  g_idx_path = std::filesystem::path(tmpl) / "1.idx";
  std::atexit(RemoveScratch);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace swrdma;
  if (size < 9) return 0;
  const OffsetWidth width = (data[0] & 1) ? OffsetWidth::k5 : OffsetWidth::k4;
  const auto version = static_cast<NeedleVersion>((data[0] >> 1) % 3 + 1);
  uint64_t dat_size = 0;
  std::memcpy(&dat_size, data + 1, 8);
  const std::span<const uint8_t> idx(data + 9, size - 9);
  const size_t entry_size = IdxEntrySize(width);

  // In-memory scan; every entry re-encodes to its exact bytes.
  std::vector<IdxEntry> scanned;
  std::vector<uint8_t> reencoded;
  const IdxScanStats stats = ScanIdx(idx, width, [&](const IdxEntry& e) {
    Check(e.offset % kIdxOffsetUnit == 0);
    scanned.push_back(e);
    EncodeIdxEntry(e, width, reencoded);
  });
  Check(stats.entries == scanned.size());
  Check(stats.consumed_bytes == scanned.size() * entry_size);
  Check(stats.consumed_bytes + stats.damaged_tail_bytes == idx.size());
  Check(stats.damaged_tail_bytes < entry_size);
  Check(reencoded.size() == stats.consumed_bytes);
  Check(reencoded.empty() || std::memcmp(reencoded.data(), idx.data(), reencoded.size()) == 0);
  uint64_t deletions = 0;
  for (const IdxEntry& e : scanned)
    deletions += e.is_deletion();
  Check(deletions == stats.deletions);

  // The file reader sees the same entries. Selector bit 7 only: each read allocates and clears a
  // 1 MiB chunk buffer, which would cut the runs per second by ~50x if done for every input.
  if (data[0] & 0x80) CheckFileReader(idx, width, scanned, stats);

  // Hold-back keeps a prefix; nothing kept but deletions ends past the .dat; the first entry held
  // back is a record that does not fit.
  IdxTail held;
  held.entries = scanned;
  held.applied_bytes = stats.consumed_bytes;
  HoldBackUnwritten(held, width, dat_size, version);
  Check(held.entries.size() <= scanned.size());
  Check(std::equal(held.entries.begin(), held.entries.end(), scanned.begin()));
  Check(held.held_back_entries == scanned.size() - held.entries.size());
  Check(held.applied_bytes + held.held_back_bytes == stats.consumed_bytes);
  for (const IdxEntry& e : held.entries) {
    if (!e.is_deletion()) Check(IdxEntryRecordEnd(e, version) <= dat_size);
  }
  if (held.entries.size() < scanned.size()) {
    const IdxEntry& first = scanned[held.entries.size()];
    Check(!first.is_deletion() && IdxEntryRecordEnd(first, version) > dat_size);
  }

  // Last-wins replay equals the obvious map-based one.
  std::map<uint64_t, IdxEntry> model;
  for (const IdxEntry& e : scanned)
    model[e.needle_id] = e;
  std::vector<IdxEntry> replayed = scanned;
  ReplayLastWins(replayed);
  Check(replayed.size() == model.size());
  size_t i = 0;
  for (const auto& [id, e] : model)
    Check(replayed[i++] == e);
  return 0;
}
