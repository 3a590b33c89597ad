#include "protocol/crc32c.h"

#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace swrdma {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Bitwise reference implementation of CRC-32C (reflected polynomial 0x82F63B78).
uint32_t ReferenceCrc32c(std::span<const uint8_t> data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t b : data) {
    crc ^= b;
    for (int k = 0; k < 8; ++k)
      crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

TEST(Crc32c, CheckValue) {
  EXPECT_EQ(Crc32c(Bytes("123456789")), 0xE3069283u);
}

TEST(Crc32c, EmptyIsZero) {
  EXPECT_EQ(Crc32c({}), 0u);
}

TEST(Crc32c, MatchesReferenceOnManyLengths) {
  std::vector<uint8_t> buf(70000);
  for (size_t i = 0; i < buf.size(); ++i)
    buf[i] = static_cast<uint8_t>(i * 131 + (i >> 7));
  for (size_t len : {1, 7, 8, 63, 64, 65, 255, 4096, 4097, 65536, 70000}) {
    std::span<const uint8_t> s(buf.data() + 1, len - 1);
    EXPECT_EQ(Crc32c(s), ReferenceCrc32c(s)) << len;
  }
}

TEST(Crc32c, SeedContinuesAnEarlierValue) {
  std::string_view all = "hello, seaweedfs needles";
  uint32_t first = Crc32c(Bytes(all.substr(0, 5)));
  EXPECT_EQ(Crc32c(Bytes(all.substr(5)), first), Crc32c(Bytes(all)));
}

TEST(Crc32c, LegacyValueForm) {
  // SeaweedFS CRC.Value(): uint32(c>>15 | c<<17) + 0xa282ead8.
  const uint32_t c = Crc32c(Bytes("123456789"));
  const uint32_t expected = static_cast<uint32_t>(((c >> 15) | (c << 17)) + 0xa282ead8u);
  EXPECT_EQ(LegacyCrcValue(c), expected);
  EXPECT_EQ(MatchCrc(c, c), CrcForm::kRaw);
  EXPECT_EQ(MatchCrc(expected, c), CrcForm::kLegacy);
  EXPECT_EQ(MatchCrc(c ^ 1, c), CrcForm::kMismatch);
}

}  // namespace
}  // namespace swrdma
