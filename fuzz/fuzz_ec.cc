// Fuzzes the EC volume parsers the agent runs on files a volume server (or a damaged disk) wrote
// (volume/ec_volume.h): `.vif` text, `.ecx` search, `.ecj` parsing, and LocateData over any
// layout. Input: 1 selector byte, then
//   selector % 3 == 0: `.vif` text. Ok results have valid shard counts (else 10+4) and a version;
//   selector % 3 == 1: 8 bytes needle id (LE), then an `.ecx` image (bit 3 of the selector: 5-byte
//     offsets). Checked against a linear scan: an entry found has the id asked and is one of the
//     image's entries; in a sorted image the id is found iff present. The same bytes as `.ecj`:
//     every whole 8 bytes is one id, the tail is counted;
//   selector % 3 == 2: a layout and a range (data shards, block sizes, shard size, offset, size
//     from the next 26 bytes). The intervals cover the range exactly, in order, each inside one
//     block of one data shard, and map back to consecutive `.dat` offsets by the row layout.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <source_location>
#include <span>
#include <string_view>
#include <vector>

#include "volume/ec_volume.h"
#include "volume/idx_file.h"

namespace {

void Check(bool ok, std::source_location at = std::source_location::current()) {
  if (ok) return;
  std::fprintf(stderr, "%s:%u: fuzz invariant does not hold\n", at.file_name(), at.line());
  std::abort();
}

template <typename T>
T Take(const uint8_t*& p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  p += sizeof(T);
  return v;
}

// The `.dat` offset of byte `shard_offset` of data shard `shard` (the encoder's row layout).
uint64_t DatOffsetOf(const swrdma::ec::Layout& l, uint32_t shard, uint64_t shard_offset) {
  const uint64_t large_rows = l.shard_dat_size / l.large_block;
  const uint64_t d = l.data_shards;
  if (shard_offset < large_rows * l.large_block) {
    const uint64_t row = shard_offset / l.large_block;
    return row * l.large_block * d + shard * l.large_block + shard_offset % l.large_block;
  }
  const uint64_t so = shard_offset - large_rows * l.large_block;
  const uint64_t row = so / l.small_block;
  return large_rows * l.large_block * d + row * l.small_block * d + shard * l.small_block +
         so % l.small_block;
}

void FuzzLayout(const uint8_t* p, size_t n) {
  using namespace swrdma;
  if (n < 26) return;
  ec::Layout l;
  l.data_shards = 1 + Take<uint8_t>(p) % ec::kMaxShards;
  l.small_block = 1 + Take<uint16_t>(p) % 4096;
  l.large_block = l.small_block * (1 + Take<uint8_t>(p) % 64);
  l.shard_dat_size = Take<uint32_t>(p) % (uint64_t{1} << 24);
  const uint64_t offset = Take<uint64_t>(p) % (uint64_t{1} << 30);
  const uint64_t size = Take<uint64_t>(p) % (uint64_t{1} << 20);
  Take<uint16_t>(p);  // reserved
  const auto intervals = ec::LocateData(l, offset, size);
  uint64_t covered = 0;
  for (const auto& iv : intervals) {
    Check(iv.size > 0);
    Check(iv.shard < l.data_shards);
    Check(DatOffsetOf(l, iv.shard, iv.shard_offset) == offset + covered);
    // Inside one block: its last byte maps right after its first in the .dat.
    Check(DatOffsetOf(l, iv.shard, iv.shard_offset + iv.size - 1) ==
          offset + covered + iv.size - 1);
    covered += iv.size;
  }
  Check(covered == size);
  Check(size > 0 || intervals.empty());
}

void FuzzIndex(const uint8_t* p, size_t n, bool five) {
  using namespace swrdma;
  if (n < 8) return;
  const uint64_t id = Take<uint64_t>(p);
  const std::span<const uint8_t> image(p, n - 8);
  const OffsetWidth w = five ? OffsetWidth::k5 : OffsetWidth::k4;
  std::vector<IdxEntry> entries;
  ScanIdx(image, w, [&](const IdxEntry& e) { entries.push_back(e); });
  bool sorted = true, present = false;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0 && entries[i - 1].needle_id >= entries[i].needle_id) sorted = false;
    present = present || entries[i].needle_id == id;
  }
  const auto found = ec::FindInSortedIndex(image, w, id);
  if (found) {
    Check(found->needle_id == id);
    bool listed = false;
    for (const auto& e : entries)
      listed = listed || e == *found;
    Check(listed);
  }
  if (sorted) Check(found.has_value() == present);
  if (entries.size() > 0) {  // the first and last entries are found in a sorted image
    if (sorted) Check(ec::FindInSortedIndex(image, w, entries.front().needle_id).has_value());
  }

  const ec::EcjContents ecj = ec::ParseEcj(image);
  Check(ecj.needle_ids.size() == image.size() / 8);
  Check(ecj.consumed_bytes == image.size() / 8 * 8);
  Check(ecj.damaged_tail_bytes == image.size() % 8);
}

void FuzzVif(const uint8_t* p, size_t n) {
  using namespace swrdma;
  auto info =
      ec::ParseEcVolumeInfo(std::string_view(reinterpret_cast<const char*>(p), n), OffsetWidth::k4);
  if (!info) return;
  Check(info->data_shards > 0 && info->parity_shards > 0);
  Check(info->data_shards + info->parity_shards <= ec::kMaxShards);
  Check(info->version > 0);
  Check(info->offset_width == OffsetWidth::k4 || info->offset_width == OffsetWidth::k5);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t selector = data[0];
  switch (selector % 3) {
    case 0:
      FuzzVif(data + 1, size - 1);
      break;
    case 1:
      FuzzIndex(data + 1, size - 1, (selector & 8) != 0);
      break;
    default:
      FuzzLayout(data + 1, size - 1);
      break;
  }
  return 0;
}
