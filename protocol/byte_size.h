// Sizes as people write them on command lines and read them in logs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace swrdma {

// "4096", "4K", "1M", "2G", "1T" (powers of 1024, case-insensitive; "KB"/"KiB" forms too) ->
// bytes. kInvalidArgument naming the text otherwise (also on overflow).
Result<uint64_t> ParseByteSize(std::string_view text);

// "512 B", "1.5 MiB", "12.0 GiB": for progress lines and logs.
std::string HumanBytes(uint64_t bytes);

}  // namespace swrdma
