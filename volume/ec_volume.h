// Erasure-coded volumes as SeaweedFS stores them (weed/storage/erasure_coding/): after
// `ec.encode` a volume server holds, per volume, `<base>.ecx` (the needle index sorted by id,
// `.idx` entries), `<base>.ecj` (deletions since encoding: 8-byte big-endian needle ids, appended),
// `<base>.vif` (protojson VolumeInfo: version, datFileSize, ecShardConfig) and some of the shard
// files `<base>.ec00` .. `<base>.ec13` (10 data + 4 parity by default), and no `.dat`.
//
// The `.dat` is laid out row by row across the data shards: first rows of one large block
// (1 GiB) per data shard while a whole large row remains, then rows of small blocks (1 MiB); the
// last small row is zero-padded. Shard i holds block i of every row, in row order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/status.h"
#include "volume/idx_file.h"

namespace swrdma::ec {

inline constexpr uint64_t kLargeBlockSize = uint64_t{1} << 30;
inline constexpr uint64_t kSmallBlockSize = uint64_t{1} << 20;
inline constexpr uint32_t kDefaultDataShards = 10;
inline constexpr uint32_t kDefaultParityShards = 4;
inline constexpr uint32_t kMaxShards = 32;  // weed's MaxShardCount (custom ratios)

// ".ec00" .. ".ec31".
std::string ShardExtension(uint32_t shard);

struct Layout {
  uint64_t large_block = kLargeBlockSize;
  uint64_t small_block = kSmallBlockSize;
  uint32_t data_shards = kDefaultDataShards;
  // The `.dat` size divided by the data shards (`.vif` datFileSize / data_shards), or, for old
  // volumes whose `.vif` lacks datFileSize, a shard file's size minus 1 (as weed does).
  uint64_t shard_dat_size = 0;
};

// One piece of a `.dat` byte range: `size` bytes at `shard_offset` in shard file `shard`.
struct ShardInterval {
  uint32_t shard = 0;
  uint64_t shard_offset = 0;
  uint64_t size = 0;
  friend bool operator==(const ShardInterval&, const ShardInterval&) = default;
};

// The pieces of `.dat` bytes [dat_offset, dat_offset + size), in order, as weed's LocateData +
// Interval.ToShardIdAndOffset compute them (generalised to `layout.data_shards`; weed's default
// is 10). Empty for size 0 or a layout with a zero block size or shard count.
// Note: weed's reader hard-codes 10 data shards (ec_locate.go DataShardsCount) while its encoder
// uses the volume's ratio, so for custom ratios weed reads the wrong places; we follow the
// encoder, i.e. where the bytes really are.
std::vector<ShardInterval> LocateData(const Layout& layout, uint64_t dat_offset, uint64_t size);

// What `<base>.vif` says about an EC volume. Absent or empty `.vif`: the defaults (version 3,
// 10+4, datFileSize unknown = 0), as weed does.
struct EcVolumeInfo {
  uint8_t version = 3;
  uint64_t dat_file_size = 0;  // 0: unknown (old volumes)
  uint32_t data_shards = kDefaultDataShards;
  uint32_t parity_shards = kDefaultParityShards;
  OffsetWidth offset_width = OffsetWidth::k4;
  uint64_t expire_at_sec = 0;
  int64_t encode_ts_ns = 0;
  // ecShardConfig.blockSize (weed since late 2026): > 0 selects the uniform layout, one block of
  // this many bytes per shard (a multiple of 1 MiB); 0 is the legacy 1 GiB / 1 MiB layout.
  uint64_t block_size = 0;
};

// The per-shard block of weed's uniform layout for a `.dat` of `dat_size` bytes:
// ceil(dat_size / data_shards) rounded up to whole 1 MiB blocks (at least one), weed's
// UniformBlockSize.
uint64_t UniformBlockSize(uint64_t dat_size, uint32_t data_shards);

// The layout a volume's `.vif` describes; `any_shard_size` (a local shard file's size, 0 if
// none) places needles of old volumes whose `.vif` lacks datFileSize, as weed does.
Layout LayoutOf(const EcVolumeInfo& info, uint64_t any_shard_size);

// Parses the protojson text of a `.vif` (numbers or decimal strings for integer fields, camelCase
// or proto names; unknown fields are ignored). No ecShardConfig: 10+4, legacy layout. A present
// one with impossible shard counts (data or parity 0, or data + parity > kMaxShards) or a
// blockSize that is negative or not a multiple of 1 MiB is kCorruption, as weed's NewEcVolume
// (late 2026) refuses to mount it: defaults would read the wrong offsets. `bytesOffset` 4 or 5
// sets offset_width; absent, 0 (what weed's ec.encode writes) or anything else leaves
// `fallback_width`. version absent or 0 stays 3. kCorruption for text that is not a JSON object
// or has wrongly typed or out-of-range fields (e.g. a negative datFileSize).
Result<EcVolumeInfo> ParseEcVolumeInfo(std::string_view text, OffsetWidth fallback_width);

// One EC volume's files in one directory.
struct EcVolumeFiles {
  uint32_t volume_id = 0;
  std::string collection;
  std::filesystem::path ecx;
  std::filesystem::path ecj;  // may not exist yet (weed creates it on load)
  std::optional<std::filesystem::path> vif;
  std::map<uint32_t, std::filesystem::path> shards;  // the shard files present here
  std::string base_name() const;                     // "<collection>_<vid>" or "<vid>"
};

struct EcDiscoveryReport {
  std::vector<EcVolumeFiles> volumes;  // sorted by volume id; only those with an .ecx
  // Shard files with no `.ecx` beside them (its `ecx` empty): weed keeps one index per server,
  // on one of its disks (or in -dir.idx); a caller scanning several directories merges these
  // into the volume whose `.ecx` it found elsewhere.
  std::vector<EcVolumeFiles> without_ecx;
  std::vector<std::string> warnings;
};

// Lists the EC volumes in `dir`: every `[<collection>_]<vid>.ecx` with the shard files beside it.
// An `.ecx` with no shard file here is listed (shards may all be elsewhere) with no shards.
// Warnings (not errors): names that are not volume names, a second `.ecx` with a volume id seen
// already (the first in name order wins), shard files `.ec32` and up, and shard files with no
// `.ecx` here (weed may keep the index in another directory, -dir.idx).
Result<EcDiscoveryReport> DiscoverEcVolumes(const std::filesystem::path& dir);

// Binary search of a sorted `.ecx` image (whole entries; a damaged tail is ignored). The entry
// as stored (its size may be a tombstone), or nullopt if the id is absent.
std::optional<IdxEntry> FindInSortedIndex(std::span<const uint8_t> ecx, OffsetWidth w,
                                          uint64_t needle_id);

// Needle ids in a `.ecj` image (8-byte big-endian each; a partial tail entry is ignored and
// counted in `damaged_tail_bytes`).
struct EcjContents {
  std::vector<uint64_t> needle_ids;
  uint64_t consumed_bytes = 0;
  uint64_t damaged_tail_bytes = 0;
};
EcjContents ParseEcj(std::span<const uint8_t> bytes);

// Encodes a volume the way `weed shell ec.encode` does (tests, `swrdma mkvolume --ec`): from
// `<dat>` and its `.idx` writes `<out_dir>/<base>.ec00..` (data shards, then parity computed
// with the same Reed-Solomon matrix as klauspost/reedsolomon, so shards match weed's byte for
// byte), `<base>.ecx` (the live entries of the replayed `.idx`, sorted by id; deleted needles
// are left out, not tombstoned), an empty `.ecj` and `<base>.vif` (every VolumeInfo field, as
// weed's SaveVolumeInfo writes them: version from the superblock, datFileSize, ecShardConfig with
// encodeTsNs; bytesOffset is our width where weed writes 0). Streams the `.dat` in chunks of at
// most 256 KiB per shard. On failure the shards, `.ecx` and `.ecj` written so far are removed.
// The Reed-Solomon codec itself is in volume/ec_codec.h.
struct EcEncodeOptions {
  uint32_t data_shards = kDefaultDataShards;
  uint32_t parity_shards = kDefaultParityShards;
  uint64_t large_block = kLargeBlockSize;  // smaller values: tests of block boundaries only
  uint64_t small_block = kSmallBlockSize;
  // As weed encodes since late 2026: one block of UniformBlockSize per shard, recorded in the
  // .vif as ecShardConfig.blockSize (large_block/small_block are then unused). false: the
  // legacy two-tier layout with the block sizes above, no blockSize in the .vif.
  bool uniform = true;
  OffsetWidth offset_width = OffsetWidth::k4;
  int64_t encode_ts_ns = 0;  // the .vif's ecShardConfig.encodeTsNs (weed: the encode time)
};
Status EncodeEcVolume(const std::filesystem::path& dat, const std::filesystem::path& idx,
                      const std::filesystem::path& out_dir, const std::string& base_name,
                      const EcEncodeOptions& options);

}  // namespace swrdma::ec
