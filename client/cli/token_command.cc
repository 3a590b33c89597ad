#include "client/cli/token_command.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "client/cli/command_error.h"
#include "protocol/file_id.h"
#include "protocol/jwt.h"

namespace swrdma::cli {
namespace {

struct TokenArgs {
  std::string key;
  std::string fid;
  int64_t ttl_seconds = 10;  // weed's default expires_after_seconds
};

}  // namespace

void AddTokenCommand(CLI::App& app) {
  auto args = std::make_shared<TokenArgs>();
  CLI::App* cmd = app.add_subcommand(
      "token",
      "Print a SeaweedFS read token for a fid, signed with a read key (as the master signs "
      "them; for trying an agent that checks tokens)");
  cmd->add_option("--key", args->key, "The read key ([jwt.signing.read] key of security.toml)")
      ->required();
  cmd->add_option("--fid", args->fid, "The file id the token is for, e.g. 3,01637037d6")
      ->required();
  cmd->add_option("--ttl", args->ttl_seconds,
                  "Seconds until it expires (exp claim); 0: no exp claim")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->callback([args] {
    if (auto parsed = ParseFileId(args->fid); !parsed) {
      throw CommandError("--fid " + args->fid + ": " + parsed.error().message(), kExitUsage);
    }
    std::optional<int64_t> exp;
    if (args->ttl_seconds > 0) {
      exp = std::chrono::duration_cast<std::chrono::seconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count() +
            args->ttl_seconds;
    }
    std::printf("%s\n", SignReadJwt(args->fid, args->key, exp).c_str());
  });
}

}  // namespace swrdma::cli
