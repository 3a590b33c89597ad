#include "client/cli/master_args.h"

#include <CLI/CLI.hpp>

#include "client/cli/command_error.h"

namespace swrdma::cli {

void AddMasterOptions(CLI::App* cmd, MasterArgs& a, CLI::Option* agent, bool tokens) {
  auto* master = cmd->add_option("--master", a.master,
                                 "SeaweedFS master URL(s) (http://HOST:9333[,...]): find each "
                                 "volume's replicas there and read from their agents");
  if (agent) master->excludes(agent);
  cmd->add_option("--agent-port", a.agent_port,
                  "With --master: the agents' port on each volume server host")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  cmd->add_option("--agent-map", a.agent_map,
                  "With --master: file of 'VOLUME_SERVER_HOST:PORT AGENT_URL' lines overriding "
                  "host + --agent-port ('#' comments)")
      ->check(CLI::ExistingFile);
  if (tokens) {
    cmd->add_flag("--read-tokens", a.read_tokens,
                  "With --master: ask the master for a read token (JWT) per fid and pass it to "
                  "the agent (volume servers with [jwt.signing.read])");
  }
}

client::ClusterClientOptions ClusterOptions(const MasterArgs& a, const client::ClientOptions& c) {
  client::ClusterClientOptions o;
  o.master.master_url = a.master;
  o.master.timeout = c.timeout;
  o.agent_port = a.agent_port;
  o.agent_map = a.agent_map;
  o.client = c;
  o.read_tokens = a.read_tokens;
  return o;
}

std::vector<std::string> AgentsOfVolume(const MasterArgs& a, uint32_t volume_id,
                                        std::chrono::milliseconds timeout) {
  client::ClientOptions c;
  c.timeout = timeout;
  auto cluster = client::ClusterClient::Create(ClusterOptions(a, c));
  if (!cluster) throw CommandError(cluster.error());
  auto agents = (*cluster)->AgentsFor(volume_id);
  if (!agents) throw CommandError(agents.error());
  return *agents;
}

}  // namespace swrdma::cli
