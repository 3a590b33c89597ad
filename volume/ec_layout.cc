// Where `.dat` bytes live in the shards, `.ecx` lookups and `.ecj` parsing.
#include <fmt/format.h>

#include "protocol/byte_order.h"
#include "volume/ec_volume.h"

namespace swrdma::ec {

std::string ShardExtension(uint32_t shard) {
  return fmt::format(".ec{:02d}", shard);
}

std::vector<ShardInterval> LocateData(const Layout& layout, uint64_t dat_offset, uint64_t size) {
  std::vector<ShardInterval> out;
  // A zero block size or shard count cannot describe any layout (and would divide by zero).
  if (size == 0 || layout.large_block == 0 || layout.small_block == 0 || layout.data_shards == 0) {
    return out;
  }
  const uint64_t d = layout.data_shards;
  // The encoder wrote floor(dat / (large * d)) large rows, which equals
  // floor(floor(dat / d) / large): the rows shard_dat_size implies.
  const uint64_t large_rows = layout.shard_dat_size / layout.large_block;
  const uint64_t large_area = large_rows * layout.large_block * d;

  bool large = dat_offset < large_area;
  const uint64_t block_size_here = large ? layout.large_block : layout.small_block;
  const uint64_t area_offset = large ? dat_offset : dat_offset - large_area;
  uint64_t block = area_offset / block_size_here;  // index among the large or the small blocks
  uint64_t inner = area_offset % block_size_here;

  while (size > 0) {
    const uint64_t block_size = large ? layout.large_block : layout.small_block;
    const uint64_t take = std::min(size, block_size - inner);
    const uint64_t row = block / d;
    // Shard i holds block i of every row: all large rows first, then the small rows.
    const uint64_t row_start = large ? row * layout.large_block
                                     : large_rows * layout.large_block + row * layout.small_block;
    out.push_back(ShardInterval{.shard = static_cast<uint32_t>(block % d),
                                .shard_offset = row_start + inner,
                                .size = take});
    size -= take;
    inner = 0;
    ++block;
    // Past the last large block the small blocks begin, counted from 0 again (weed's
    // moveToNextBlock).
    if (large && block == large_rows * d) {
      large = false;
      block = 0;
    }
  }
  return out;
}

std::optional<IdxEntry> FindInSortedIndex(std::span<const uint8_t> ecx, OffsetWidth w,
                                          uint64_t needle_id) {
  const size_t entry_size = IdxEntrySize(w);
  // Whole entries only: a damaged tail (an interrupted copy) cannot be an entry.
  size_t lo = 0, hi = ecx.size() / entry_size;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    const IdxEntry e = DecodeIdxEntry(ecx.data() + mid * entry_size, w);
    if (e.needle_id == needle_id) return e;
    if (e.needle_id < needle_id) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return std::nullopt;
}

EcjContents ParseEcj(std::span<const uint8_t> bytes) {
  constexpr size_t kIdSize = 8;
  EcjContents out;
  const size_t whole = bytes.size() / kIdSize;
  out.needle_ids.reserve(whole);
  for (size_t i = 0; i < whole; ++i)
    out.needle_ids.push_back(LoadBe64(bytes.data() + i * kIdSize));
  out.consumed_bytes = whole * kIdSize;
  out.damaged_tail_bytes = bytes.size() - out.consumed_bytes;
  return out;
}

}  // namespace swrdma::ec
