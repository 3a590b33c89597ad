// A whole agent in the test process, wired as swrdma-agent's main wires it (index, volume set,
// progress thread, HTTP API on an ephemeral loopback port, optionally the volume watcher).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent_service.h"
#include "agent/local_server.h"
#include "agent/progress_thread.h"
#include "agent/read_auth.h"
#include "agent/read_server.h"
#include "agent/tcp_read_server.h"
#include "agent/volume_set.h"
#include "agent/volume_watcher.h"
#include "http/http_server.h"
#include "index/needle_index.h"
#include "rdma/ucx/ucx_context.h"

namespace swrdma::testing {

struct InProcessAgentOptions {
  agent::ExportMode mode = agent::ExportMode::kMap;
  bool watch = false;  // run the inotify watcher (live volume tests)
  std::chrono::milliseconds retire_grace = std::chrono::seconds(10);
  uint64_t growth_reserve = uint64_t{1} << 30;
  uint16_t port = 0;                        // 0: any free port
  std::optional<std::string> jwt_read_key;  // read authorization on
  // What the HTTP API says and does about keys ("region": /v1/volumes hands them out, as an
  // agent with a NIC that enforces them would). Reads are checked reads whatever it says.
  std::string exposure = "checked";
  // The agent's UCX context beyond what swrdma-agent always sets (wakeup, PROTO_INDIRECT_ID):
  // transports, shared-memory peer failure, extra UCX settings (e.g. a short keepalive).
  rdma::UcxContextOptions ucx;
  // Checked reads over TCP (agent/tcp_read_server.h) on an ephemeral loopback port, advertised
  // in /v1/info as swrdma-agent does; these limits as given.
  bool tcp_read = true;
  agent::TcpReadServerOptions tcp_read_options;
  // Same-host reads (agent/local_server.h): the socket to serve, with these allowed uids.
  std::optional<std::filesystem::path> local_socket;
  std::vector<uint32_t> local_allow_uids;
};

class InProcessAgent {
 public:
  InProcessAgent(const std::vector<std::filesystem::path>& dirs,
                 const std::filesystem::path& index_dir, InProcessAgentOptions options = {});
  InProcessAgent(const std::vector<std::filesystem::path>& dirs,
                 const std::filesystem::path& index_dir, agent::ExportMode mode)
      : InProcessAgent(dirs, index_dir, InProcessAgentOptions{.mode = mode}) {}
  ~InProcessAgent();

  std::string url() const;
  uint16_t port() const;
  const agent::ScanReport& report() const { return report_; }
  agent::VolumeSet& volumes() { return *volumes_; }
  // Generation of the volume's current export, 0 if not exported.
  uint64_t generation(uint32_t vid) const;
  const agent::ReadServer& read_server() const { return *reads_; }
  // Null when options.tcp_read was false.
  const agent::TcpReadServer* tcp_read_server() const { return tcp_reads_.get(); }
  uint16_t tcp_read_port() const { return tcp_reads_ ? tcp_reads_->port() : 0; }
  agent::LocalServer* local_server() const { return local_.get(); }
  const std::vector<uint8_t>& worker_address() const { return progress_->worker_address(); }

 private:
  std::optional<rdma::UcxContext> context_;
  std::unique_ptr<NeedleIndex> index_;
  std::unique_ptr<agent::VolumeSet> volumes_;
  agent::ScanReport report_;
  std::unique_ptr<agent::ProgressThread> progress_;
  std::unique_ptr<agent::ReadAuthorizer> auth_;
  std::unique_ptr<agent::ReadServer> reads_;
  std::unique_ptr<agent::TcpReadServer> tcp_reads_;
  std::unique_ptr<agent::LocalServer> local_;
  std::unique_ptr<agent::AgentService> service_;
  std::unique_ptr<agent::HttpServer> server_;
  std::unique_ptr<agent::VolumeWatcher> watcher_;
};

}  // namespace swrdma::testing
