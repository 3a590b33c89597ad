// Fuzzes the EC volume format readers (volume/ec_volume.h): what the agent runs on every EC
// volume's `.vif`, `.ecx` and `.ecj`, and the layout arithmetic every EC read goes through.
// Input: 1 selector byte, then
//   0: `.vif` text -> ParseEcVolumeInfo (a result, if any, has a usable ratio and version);
//   1: 32 bytes of layout/range (little-endian fields, bounded) -> LocateData, checked piece by
//      piece against the row layout the encoder writes;
//   2: 1 width byte, 8 bytes of needle id, then index bytes: sorted and searched with
//      FindInSortedIndex, checked against a linear scan; the same bytes through ParseEcj.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <source_location>
#include <span>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "volume/ec_volume.h"

namespace {

using namespace swrdma;

using swrdma::fuzz::Check;

uint64_t Le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

void FuzzVif(std::span<const uint8_t> in) {
  const std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
  const auto info = ec::ParseEcVolumeInfo(text, OffsetWidth::k4);
  if (!info) {
    Check(info.error().code() == Code::kCorruption);
    return;
  }
  Check(info->data_shards > 0 && info->parity_shards > 0);
  Check(info->data_shards + info->parity_shards <= ec::kMaxShards);
  Check(info->version != 0);
}

// The shard and shard offset of one .dat byte, from the row layout itself.
std::pair<uint32_t, uint64_t> ByteHome(const ec::Layout& l, uint64_t pos) {
  const uint64_t d = l.data_shards, large_rows = l.shard_dat_size / l.large_block;
  const uint64_t large_area = large_rows * l.large_block * d;
  const uint64_t block = pos < large_area ? l.large_block : l.small_block;
  const uint64_t base = pos < large_area ? 0 : large_rows * l.large_block;
  if (pos >= large_area) pos -= large_area;
  const uint64_t row = pos / (block * d), in_row = pos % (block * d);
  return {static_cast<uint32_t>(in_row / block), base + row * block + in_row % block};
}

void FuzzLocate(std::span<const uint8_t> in) {
  if (in.size() < 32) return;
  // Bounded so the byte-level reference stays exact and fast (no overflow, few pieces).
  const ec::Layout l{.large_block = 1 + Le64(in.data()) % 100000,
                     .small_block = 1 + Le64(in.data() + 8) % 5000,
                     .data_shards = 1 + static_cast<uint32_t>(in[16] % ec::kMaxShards),
                     .shard_dat_size = Le64(in.data() + 17) % (uint64_t{1} << 32)};
  const uint64_t offset = Le64(in.data() + 24) % (uint64_t{1} << 40);
  const uint64_t size =
      in.size() > 32 ? uint64_t{in[32]} * (in.size() > 33 ? uint64_t{in[33]} + 1 : 1) : 0;
  const std::vector<ec::ShardInterval> pieces = ec::LocateData(l, offset, size);
  uint64_t pos = offset;
  for (const ec::ShardInterval& s : pieces) {
    Check(s.size > 0);
    Check(s.shard < l.data_shards);
    // The first and last byte of every piece are where the encoder put them; a piece never
    // crosses a block (it is contiguous in one shard).
    const auto first = ByteHome(l, pos), last = ByteHome(l, pos + s.size - 1);
    Check(first.first == s.shard && first.second == s.shard_offset);
    Check(last.first == s.shard && last.second == s.shard_offset + s.size - 1);
    pos += s.size;
  }
  Check(pos == offset + size);
}

void FuzzIndex(std::span<const uint8_t> in) {
  if (in.size() < 9) return;
  const OffsetWidth w = (in[0] & 1) ? OffsetWidth::k5 : OffsetWidth::k4;
  const uint64_t id = Le64(in.data() + 1);
  const std::span<const uint8_t> bytes = in.subspan(9);

  const ec::EcjContents ecj = ec::ParseEcj(bytes);
  Check(ecj.needle_ids.size() * 8 == ecj.consumed_bytes);
  Check(ecj.consumed_bytes + ecj.damaged_tail_bytes == bytes.size());
  Check(ecj.damaged_tail_bytes < 8);

  // Sort the whole entries by id and re-encode, keeping the damaged tail: a valid .ecx with a
  // tail FindInSortedIndex must ignore. (std::sort: libstdc++'s stable_sort trips clang's
  // deprecation of get_temporary_buffer.)
  std::vector<IdxEntry> entries;
  ScanIdx(bytes, w, [&](const IdxEntry& e) { entries.push_back(e); });
  std::sort(entries.begin(), entries.end(),
            [](const IdxEntry& a, const IdxEntry& b) { return a.needle_id < b.needle_id; });
  std::vector<uint8_t> ecx;
  for (const IdxEntry& e : entries)
    EncodeIdxEntry(e, w, ecx);
  ecx.insert(ecx.end(), bytes.end() - static_cast<ptrdiff_t>(bytes.size() % IdxEntrySize(w)),
             bytes.end());
  for (uint64_t probe : {id, entries.empty() ? 0 : entries.front().needle_id}) {
    const auto found = ec::FindInSortedIndex(ecx, w, probe);
    const bool present = std::any_of(entries.begin(), entries.end(),
                                     [&](const IdxEntry& e) { return e.needle_id == probe; });
    Check(found.has_value() == present);
    // With duplicate ids any of them may be returned, as weed's binary search does.
    if (found) {
      Check(found->needle_id == probe);
      Check(std::find(entries.begin(), entries.end(), *found) != entries.end());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::span<const uint8_t> in(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      FuzzVif(in);
      break;
    case 1:
      FuzzLocate(in);
      break;
    default:
      FuzzIndex(in);
      break;
  }
  return 0;
}
