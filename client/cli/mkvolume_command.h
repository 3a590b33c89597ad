// `swrdma mkvolume`: writes a synthetic SeaweedFS volume (deterministic content, optional gzip,
// deletions, legacy CRCs, 5-byte offsets) for tests and benchmarks.
#pragma once

#include <cstdint>
#include <string_view>

#include <CLI/CLI.hpp>

#include "protocol/status.h"

namespace swrdma::cli {

// Registers the `mkvolume` subcommand on `app`. Its callback throws CommandError on failure.
void AddMkvolumeCommand(CLI::App& app);

}  // namespace swrdma::cli
