// `swrdma mkvolume`: writes a synthetic SeaweedFS volume (deterministic content, optional gzip,
// deletions, legacy CRCs, 5-byte offsets) for tests and benchmarks.
#pragma once

#include <cstdint>
#include <string_view>

#include <CLI/CLI.hpp>

#include "protocol/status.h"

namespace swrdma::cli {

// "4096", "4K", "1M", "2G", "1T" (powers of 1024, case-insensitive; "KB"/"KiB" forms too) ->
// bytes. kInvalidArgument naming the text otherwise.
Result<uint64_t> ParseByteSize(std::string_view text);

// Registers the `mkvolume` subcommand on `app`. Its callback throws CommandError on failure.
void AddMkvolumeCommand(CLI::App& app);

}  // namespace swrdma::cli
