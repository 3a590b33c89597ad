// The options shared by the subcommands that can go through a SeaweedFS master instead of one
// agent (--master, --agent-port, --agent-map, --read-tokens), and what they turn into.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "client/cluster_client.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace swrdma::cli {

struct MasterArgs {
  std::string master;  // empty: not given
  uint16_t agent_port = client::kDefaultAgentPort;
  std::string agent_map;
  bool read_tokens = false;
};

// Adds --master, --agent-port, --agent-map (and --read-tokens if `tokens`). `agent`, if given,
// is the subcommand's --agent option: the two exclude each other.
void AddMasterOptions(CLI::App* cmd, MasterArgs& a, CLI::Option* agent, bool tokens);

// Cluster options for `a` with `client` as every agent's Client options.
client::ClusterClientOptions ClusterOptions(const MasterArgs& a, const client::ClientOptions& c);

// The agents serving volume `volume_id` according to the master (throws CommandError).
std::vector<std::string> AgentsOfVolume(const MasterArgs& a, uint32_t volume_id,
                                        std::chrono::milliseconds timeout);

}  // namespace swrdma::cli
