// gzip as SeaweedFS uses it for compressed needle data (flag 0x01), via zlib.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "protocol/status.h"

namespace swrdma {

// Decompresses a whole gzip stream, every member of it (concatenated members are one stream, as
// Go's gzip.Reader reads them; the needle CRC covers only the compressed bytes, so stopping after
// the first member would lose data silently). kCorruption if it is not valid gzip;
// kResourceExhausted if the output would exceed `max_output` bytes (a guard against decompression
// bombs).
Result<std::vector<uint8_t>> Gunzip(std::span<const uint8_t> compressed,
                                    size_t max_output = size_t{1} << 32);

// Starts with the gzip magic 1f 8b (SeaweedFS's util.IsGzippedContent).
bool IsGzipData(std::span<const uint8_t> data);

// The data of a needle stored with the compressed flag (0x01), as the volume server serves it
// (util.DecompressData): gunzipped when it starts with the gzip magic, otherwise the stored bytes
// unchanged (weed answers 200 with them: a client may set Content-Encoding: gzip on anything).
Result<std::vector<uint8_t>> DecompressNeedleData(std::span<const uint8_t> data,
                                                  size_t max_output = size_t{1} << 32);

// Compresses `data` into a gzip stream (as Go's gzip.Writer does, default level).
Result<std::vector<uint8_t>> Gzip(std::span<const uint8_t> data, int level = 6);

}  // namespace swrdma
