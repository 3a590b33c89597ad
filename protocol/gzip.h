// gzip as SeaweedFS uses it for compressed needle data (flag 0x01), via zlib.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "protocol/status.h"

namespace swrdma {

// Decompresses a whole gzip stream. kCorruption if it is not valid gzip; kResourceExhausted if
// the output would exceed `max_output` bytes (a guard against decompression bombs).
Result<std::vector<uint8_t>> Gunzip(std::span<const uint8_t> compressed,
                                    size_t max_output = size_t{1} << 32);

// Compresses `data` into a gzip stream (as Go's gzip.Writer does, default level).
Result<std::vector<uint8_t>> Gzip(std::span<const uint8_t> data, int level = 6);

}  // namespace swrdma
