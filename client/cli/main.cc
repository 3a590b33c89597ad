// `swrdma`: the client command line. Thin on purpose: each subcommand lives in its own
// <name>_command.{h,cc} and registers itself here; failures surface as CommandError.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "client/cli/bench_command.h"
#include "client/cli/command_error.h"
#include "client/cli/mkvolume_command.h"
#include "client/cli/read_commands.h"
#include "client/cli/sidecar_command.h"
#include "client/cli/token_command.h"

int main(int argc, char** argv) {
  CLI::App app{"swrdma: read SeaweedFS needles over one-sided RDMA, and tools around it"};
  app.require_subcommand(1);
  swrdma::cli::AddMkvolumeCommand(app);
  swrdma::cli::AddGetCommand(app);
  swrdma::cli::AddInfoCommand(app);
  swrdma::cli::AddBenchCommand(app);
  swrdma::cli::AddSidecarCommand(app);
  swrdma::cli::AddTokenCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const swrdma::cli::CommandError& e) {
    std::fprintf(stderr, "swrdma: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swrdma: unexpected error: %s\n", e.what());
    return swrdma::cli::kExitFailure;
  }
  return swrdma::cli::kExitOk;
}
