#include "volume/superblock.h"

#include <algorithm>

#include <fmt/format.h>

#include "protocol/byte_order.h"

namespace swrdma {

std::string SuperBlock::replica_placement_string() const {
  // SeaweedFS prints the byte as three decimal digits: 2 -> "002", 110 -> "110".
  return fmt::format("{:03d}", replica_placement);
}

Result<SuperBlock> ParseSuperBlock(std::span<const uint8_t> bytes) {
  if (bytes.size() < kSuperBlockSize) {
    return Error(Code::kCorruption,
                 fmt::format("superblock truncated: {} of {} bytes (is the .dat empty?)",
                             bytes.size(), kSuperBlockSize));
  }
  SuperBlock sb;
  SWRDMA_ASSIGN_OR_RETURN(sb.version, ToNeedleVersion(bytes[0]));
  sb.replica_placement = bytes[1];
  sb.ttl_count = bytes[2];
  sb.ttl_unit = bytes[3];
  sb.compaction_revision = LoadBe16(bytes.data() + 4);
  // Version 1 has no extra: SeaweedFS ignores bytes 6..7 there.
  if (sb.version != NeedleVersion::kV1) {
    const uint16_t extra_size = LoadBe16(bytes.data() + 6);
    if (bytes.size() < kSuperBlockSize + extra_size) {
      return Error(Code::kCorruption,
                   fmt::format("superblock extra truncated: header says {} extra bytes, {} present",
                               extra_size, bytes.size() - kSuperBlockSize));
    }
    sb.extra.assign(bytes.begin() + kSuperBlockSize, bytes.begin() + kSuperBlockSize + extra_size);
  }
  return sb;
}

std::vector<uint8_t> EncodeSuperBlock(const SuperBlock& sb) {
  const bool has_extra = sb.version != NeedleVersion::kV1 && !sb.extra.empty();
  // The size field is 16 bits; SeaweedFS refuses anything larger, callers never build one.
  const size_t extra_size = has_extra ? std::min<size_t>(sb.extra.size(), 0xFFFF) : 0;
  std::vector<uint8_t> out(kSuperBlockSize + extra_size, 0);
  out[0] = static_cast<uint8_t>(sb.version);
  out[1] = sb.replica_placement;
  out[2] = sb.ttl_count;
  out[3] = sb.ttl_unit;
  StoreBe16(out.data() + 4, sb.compaction_revision);
  StoreBe16(out.data() + 6, static_cast<uint16_t>(extra_size));
  std::copy_n(sb.extra.begin(), extra_size, out.begin() + kSuperBlockSize);
  return out;
}

}  // namespace swrdma
