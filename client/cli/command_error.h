// How a `swrdma` subcommand reports failure: its callback throws CommandError, main() prints the
// message and exits with the code. Only the CLI edge uses exceptions; the libraries return Status.
#pragma once

#include <stdexcept>
#include <string>

#include "protocol/status.h"

namespace swrdma::cli {

// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the operation failed (I/O, corrupt data, ...)
inline constexpr int kExitUsage = 2;    // the arguments do not make sense together

class CommandError : public std::runtime_error {
 public:
  CommandError(std::string message, int exit_code)
      : std::runtime_error(std::move(message)), exit_code_(exit_code) {}
  explicit CommandError(const Status& status)
      : CommandError(status.ToString(),
                     status.code() == Code::kInvalidArgument ? kExitUsage : kExitFailure) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

}  // namespace swrdma::cli
