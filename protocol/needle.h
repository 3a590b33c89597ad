// SeaweedFS needle records (versions 1, 2, 3), parsed and encoded exactly as the volume server
// lays them out in a `.dat`. Everything here is pure: no I/O, so the client can verify a record it
// fetched one-sidedly and fuzzers can feed it garbage.
//
// Record on disk (big-endian):
//   header   cookie u32 | needle id u64 | size u32
//   body     v1: data (size bytes)
//            v2/v3: DataSize u32 | Data | Flags u8 | [NameSize u8 Name] | [MimeSize u8 Mime]
//                   | [LastModified 5 bytes] | [TTL 2 bytes] | [PairsSize u16 Pairs]
//            (size 0 means no body at all: deletion tombstones look like this)
//   checksum u32, CRC-32C of Data (raw, or the legacy Value() form)
//   v3 only: AppendAtNs u64
//   padding  1..8 bytes to the next multiple of 8, content undefined (never checked)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/crc32c.h"
#include "protocol/status.h"

namespace swrdma {

enum class NeedleVersion : uint8_t { kV1 = 1, kV2 = 2, kV3 = 3 };

// kCorruption unless v is 1, 2 or 3.
Result<NeedleVersion> ToNeedleVersion(uint8_t v);

inline constexpr size_t kNeedleHeaderSize = 16;
inline constexpr size_t kNeedleChecksumSize = 4;
inline constexpr size_t kNeedleTimestampSize = 8;
inline constexpr size_t kNeedlePaddingSize = 8;
inline constexpr uint32_t kTombstoneSize = 0xFFFFFFFFu;  // size in .idx of a deletion

namespace needle_flags {
inline constexpr uint8_t kGzip = 0x01;
inline constexpr uint8_t kHasName = 0x02;
inline constexpr uint8_t kHasMime = 0x04;
inline constexpr uint8_t kHasLastModified = 0x08;
inline constexpr uint8_t kHasTtl = 0x10;
inline constexpr uint8_t kHasPairs = 0x20;
inline constexpr uint8_t kIsChunkManifest = 0x80;
}  // namespace needle_flags

inline constexpr size_t kLastModifiedBytes = 5;
inline constexpr size_t kTtlBytes = 2;

struct NeedleHeader {
  uint32_t cookie = 0;
  uint64_t id = 0;
  uint32_t size = 0;  // body size; 0 for tombstones
};

// Needs at least 16 bytes (kCorruption otherwise).
Result<NeedleHeader> ParseNeedleHeader(std::span<const uint8_t> bytes);

// Padding after the checksum (and AppendAtNs): 1..8 bytes, never 0.
uint32_t NeedlePadding(uint32_t size, NeedleVersion version);

// Whole record length on disk, from the header's size alone: what a reader must fetch.
uint64_t NeedleRecordLength(uint32_t size, NeedleVersion version);

// Bytes up to and including the checksum (and AppendAtNs for v3): what parsing needs.
uint64_t NeedleRecordLengthWithoutPadding(uint32_t size, NeedleVersion version);

// A parsed record; spans and views point into the caller's buffer.
struct NeedleRecord {
  NeedleVersion version = NeedleVersion::kV3;
  NeedleHeader header;
  std::span<const uint8_t> data;
  uint8_t flags = 0;
  std::string_view name;
  std::string_view mime;
  uint64_t last_modified = 0;  // unix seconds, 0 if absent
  uint8_t ttl_count = 0;
  uint8_t ttl_unit = 0;
  std::span<const uint8_t> pairs;  // JSON object of HTTP header pairs
  uint32_t checksum = 0;
  uint64_t append_at_ns = 0;  // v3 only

  bool is_gzipped() const { return flags & needle_flags::kGzip; }
  bool is_chunk_manifest() const { return flags & needle_flags::kIsChunkManifest; }
  bool is_tombstone() const { return header.size == 0; }
};

// Parses the record at the start of `bytes` (padding may be absent). Checks only structure:
// lengths inside the body agree with the header's size. kCorruption with the reason otherwise.
Result<NeedleRecord> ParseNeedleRecord(std::span<const uint8_t> bytes, NeedleVersion version);

// Minutes a stored TTL {count, unit} lasts, as weed's needle.TTL.Minutes: units 1..6 are minute,
// hour, day, week, month (30 days), year (365 days); unit 0 or above 6 is 0 (never expires).
uint32_t TtlMinutes(uint8_t count, uint8_t unit);

// weed's expiry rule (weed/storage/volume_read.go readNeedle), the same on every read path: a
// needle is gone when it has the TTL flag with a non-zero TTL, has the LastModified flag, and
// `now` is not before AppendAtNs + TTL. AppendAtNs is 0 in version 1/2 records, so such a needle
// with a TTL reads as expired, as on the volume server. `now_ns`: nanoseconds since the epoch.
bool NeedleExpired(const NeedleRecord& record, uint64_t now_ns);

// What the reader asked for, to check a fetched record against.
struct ExpectedNeedle {
  uint64_t id = 0;
  uint32_t cookie = 0;
  std::optional<uint32_t> size;  // from the index, when known
};

// Checks the header against `expected` (id/size: kCorruption, cookie: kNotFound as the volume
// server answers a wrong cookie), then the CRC-32C of the data in raw or legacy form
// (kChecksumMismatch). Empty data is not checked. Returns the form the checksum was stored in.
Result<CrcForm> VerifyNeedle(const NeedleRecord& record, const ExpectedNeedle& expected);

// Checks only the CRC of the data (the header was checked by the caller).
Result<CrcForm> VerifyNeedleChecksum(const NeedleRecord& record);

// What to write. Data is stored as given (already gzip-compressed when `gzipped`).
struct NeedleSpec {
  uint64_t id = 0;
  uint32_t cookie = 0;
  std::span<const uint8_t> data;
  bool gzipped = false;
  bool chunk_manifest = false;
  std::string name;                                // at most 255 bytes
  std::string mime;                                // at most 255 bytes
  std::optional<uint64_t> last_modified;           // unix seconds, low 40 bits stored
  std::optional<std::pair<uint8_t, uint8_t>> ttl;  // {count, unit}
  std::string pairs;                               // at most 65535 bytes
  uint64_t append_at_ns = 0;
  bool legacy_crc = false;  // store Value() as SeaweedFS < 3.09 did
};

// Appends the full record (with padding, zero-filled) to `out`. Empty data writes a size-0
// record, which is how SeaweedFS appends a deletion. kInvalidArgument for oversize fields.
Status EncodeNeedle(const NeedleSpec& spec, NeedleVersion version, std::vector<uint8_t>& out);

}  // namespace swrdma
