// `swrdma token`: signs a SeaweedFS read token (HS256 JWT with the fid claim, as the master's
// GenJwtForVolumeServer makes it) with a read key. For trying an agent that checks tokens
// (--jwt-read-key, security.toml) and for tests; in production the master issues them.
#pragma once

#include <CLI/CLI.hpp>

namespace swrdma::cli {

void AddTokenCommand(CLI::App& app);

}  // namespace swrdma::cli
