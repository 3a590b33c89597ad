// The 8-byte superblock at the start of every SeaweedFS `.dat` (plus its optional extra bytes).
//   [0] version 1|2|3  [1] replica placement  [2..3] TTL {count, unit}
//   [4..5] compaction revision u16 BE  [6..7] extra size u16 BE (v2/v3), then that many bytes of
//   protobuf SuperBlockExtra. The first needle starts at 8 + extra size.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol/needle.h"
#include "protocol/status.h"

namespace swrdma {

inline constexpr size_t kSuperBlockSize = 8;

struct SuperBlock {
  NeedleVersion version = NeedleVersion::kV3;
  uint8_t replica_placement = 0;  // as the byte: DC*100 + rack*10 + same rack
  uint8_t ttl_count = 0;
  uint8_t ttl_unit = 0;
  uint16_t compaction_revision = 0;
  std::vector<uint8_t> extra;  // raw SuperBlockExtra protobuf (v2/v3), may be empty

  // Offset of the first needle record: 8 + extra size.
  uint64_t data_start() const { return kSuperBlockSize + extra.size(); }
  // "002" style replica placement string.
  std::string replica_placement_string() const;
};

// Parses the superblock from the start of a `.dat`. `bytes` may be the whole file or just its
// head; kCorruption with the reason if it is short, the version unknown, or the extra truncated.
Result<SuperBlock> ParseSuperBlock(std::span<const uint8_t> bytes);

// The bytes SeaweedFS writes for `sb` (8 + extra size).
std::vector<uint8_t> EncodeSuperBlock(const SuperBlock& sb);

}  // namespace swrdma
