// `swrdma get` and `swrdma info`: the read side of the CLI, on the client library.
#pragma once

namespace CLI {
class App;
}

namespace swrdma::cli {

void AddGetCommand(CLI::App& app);
void AddInfoCommand(CLI::App& app);

}  // namespace swrdma::cli
