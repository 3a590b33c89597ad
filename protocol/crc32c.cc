#include "protocol/crc32c.h"

#include <isa-l/crc.h>

#include <climits>

namespace swrdma {

uint32_t Crc32c(std::span<const uint8_t> data, uint32_t seed) {
  // ISA-L takes an int length and leaves the pre/post inversion to the caller.
  uint32_t crc = ~seed;
  const uint8_t* p = data.data();
  size_t left = data.size();
  constexpr size_t kChunk = size_t{1} << 30;
  while (left > 0) {
    const size_t n = left < kChunk ? left : kChunk;
    crc = crc32_iscsi(const_cast<unsigned char*>(p), static_cast<int>(n), crc);
    p += n;
    left -= n;
  }
  return ~crc;
}

}  // namespace swrdma
