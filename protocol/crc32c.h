// CRC-32C (Castagnoli) as SeaweedFS stores it in needle records, computed with ISA-L.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace swrdma {

// Standard CRC-32C of `data` (check value of "123456789" is 0xE3069283); `seed` continues an
// earlier value, so Crc32c(b, Crc32c(a)) == Crc32c(a + b).
uint32_t Crc32c(std::span<const uint8_t> data, uint32_t seed = 0);

// The legacy form stored by SeaweedFS before 3.09: CRC.Value() = rotr(c, 15) + 0xa282ead8.
constexpr uint32_t LegacyCrcValue(uint32_t crc) {
  return static_cast<uint32_t>(((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

enum class CrcForm : uint8_t { kRaw, kLegacy, kMismatch };

// Which form `stored` is of the CRC of `data` (raw first, as current SeaweedFS writes it).
inline CrcForm MatchCrc(uint32_t stored, uint32_t computed) {
  if (stored == computed) return CrcForm::kRaw;
  if (stored == LegacyCrcValue(computed)) return CrcForm::kLegacy;
  return CrcForm::kMismatch;
}

}  // namespace swrdma
