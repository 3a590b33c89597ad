// One-sided RDMA READ for clients with an RDMA device (InfiniBand, RoCE; Soft-RoCE in tests):
// the agent's side of the verbs data path (rdma/verbs/).
//
// One protection domain on one device. Every export (agent/exported_volume.h) is registered
// there through registrar(), REMOTE_READ only: no LOCAL_WRITE, REMOTE_WRITE, atomics or memory
// windows, so the NIC refuses any peer's write whatever the file mapping allows. Clients connect
// through rdma_cm to `port`; each gets an RC queue pair whose responder accepts RDMA READ and
// nothing else. After that the agent's CPU takes no part in a read: the NIC serves it from the
// page cache. Keys leave the agent through the HTTP key exchange (/v1/volumes/<vid>); a
// generation's registrations go when the generation retires, and its rkeys then fail with a
// remote access error at the client, never with stale bytes.
//
// Push (--exposure push): clients get no key and no READ at all (their QPs' responder allows
// nothing). A client offers a landing buffer with each checked read over the TCP read port; the
// agent checks every fid as for any checked read and RDMA WRITEs the records from the exports'
// registrations into the landing (RecordPusher), then answers where they landed. Per-fid tokens
// hold as on the checked path, so push needs no --region-with-tokens.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent_config.h"
#include "agent/exported_volume.h"
#include "agent/record_pusher.h"
#include "protocol/status.h"
#include "rdma/verbs/completion_queue.h"
#include "rdma/verbs/connection.h"
#include "rdma/verbs/device.h"
#include "rdma/verbs/file_export.h"
#include "rdma/verbs/registrar.h"

namespace swrdma::agent {

// On-demand paging (--verbs-odp): auto uses it when the device offers ODP for RC RDMA READ,
// on requires it (an error at start otherwise), off never uses it.
enum class OdpMode { kAuto, kOn, kOff };
Result<OdpMode> ParseOdpMode(std::string_view text);

struct VerbsExporterOptions {
  std::string device;               // empty: the first device whose port 1 is active
  std::string address = "0.0.0.0";  // rdma_cm listen address
  uint16_t port = 18517;            // rdma_cm listen port (0: any free one)
  // Where to probe which file mapping this kernel pins read-only (a volume directory: the
  // same file system as the volumes).
  std::filesystem::path probe_dir;
  size_t max_connections = 1024;
  OdpMode odp = OdpMode::kAuto;
  // Read tokens are on (--region-with-tokens): a connection is accepted with no remote access
  // at all and opened for RDMA READ only by a grant (Grant: its client showed a valid read
  // token), until that token expires; then the agent disconnects it. Off: every connection may
  // READ from the start until it disconnects.
  bool require_grant = false;
  std::chrono::seconds max_grant{3600};        // a grant for a token without exp
  std::chrono::seconds ungranted_timeout{30};  // a connection never granted is dropped then
  // Push instead of region (see above): connections allow no remote access, the agent writes.
  bool push = false;
  std::chrono::milliseconds push_timeout{5000};  // one request's writes, then the connection ends
};

// What each accepted connection gets in the accept's private data: the nonce its client names
// in POST /v1/verbs/grant.
inline constexpr size_t kVerbsNonceBytes = 16;
// RDMA WRITEs one push connection has outstanding at once (its send queue and CQ depth).
inline constexpr uint32_t kPushDepth = 32;
using VerbsNonce = std::array<uint8_t, kVerbsNonceBytes>;

class VerbsExporter final : public RecordPusher {
 public:
  // Opens the device, its protection domain, probes the mapping, listens and starts accepting.
  // kRdmaNoDevice when there is no device (the caller then serves checked reads only).
  static Result<std::unique_ptr<VerbsExporter>> Start(const VerbsExporterOptions& options);
  VerbsExporter(const VerbsExporter&) = delete;
  VerbsExporter& operator=(const VerbsExporter&) = delete;
  // Stops accepting and disconnects every client. Every registration made through registrar()
  // must be gone before (the volume set is destroyed first).
  ~VerbsExporter() override;

  // Registers exports REMOTE_READ only in this exporter's protection domain.
  const rdma::Registrar& registrar() const { return registrar_; }
  // Which file mapping this kernel pins for a read-only registration (rdma/verbs/file_export.h):
  // the volume set must map exports that way.
  rdma::verbs::ExportMapping mapping() const { return mapping_; }
  const std::string& device_name() const { return device_.name(); }
  // True when exports are registered REMOTE_READ | ON_DEMAND: they pin nothing, so the pin
  // budget does not apply and every volume is registered whatever its size.
  bool on_demand() const { return registrar_.on_demand(); }
  uint16_t port() const { return listener_.port(); }
  size_t connections() const;
  uint64_t accepted() const { return accepted_.load(); }
  bool require_grant() const { return options_.require_grant; }
  // Opens the connection `nonce` names for RDMA READ until `token_exp` (seconds since the epoch;
  // none: max_grant from now), or extends its grant. The time it ends (system clock);
  // kNotFound when no connection has that nonce (gone, dropped, or never ours). Without
  // require_grant the connections are open already: the answer is nullopt (no end).
  Result<std::optional<std::chrono::system_clock::time_point>> Grant(
      const VerbsNonce& nonce, std::optional<int64_t> token_exp);
  uint64_t grants() const { return grants_.load(); }
  // Connections the agent ended: their grant expired, or they were never granted in time.
  uint64_t revocations() const { return revocations_.load(); }
  // /v1/info "verbs": device, port, mapping, clients connected.
  nlohmann::json Info() const;

  bool push() const { return options_.push; }
  // RecordPusher (push mode only; elsewhere Push answers kUnsupported). agent/verbs_push.cc:
  // one thread posts the writes of every push and polls their completions, one push at a time
  // per connection, each bounded by push_timeout; the read servers' threads never wait.
  std::optional<PushWrite> Source(const ExportedVolume& source,
                                  std::span<const uint8_t> record) const override;
  void Push(const PushLanding& landing, std::vector<PushWrite> writes, PushDone done) override;
  void StopPushes(std::chrono::milliseconds wait) override;
  size_t pushes_in_flight() const;
  uint64_t pushes() const { return pushes_.load(); }
  uint64_t pushed_bytes() const { return pushed_bytes_.load(); }
  uint64_t push_failures() const { return push_failures_.load(); }

 private:
  VerbsExporter(rdma::verbs::Device device, rdma::verbs::ProtectionDomain pd,
                rdma::verbs::CompletionQueue cq, rdma::verbs::Listener listener,
                rdma::verbs::ExportMapping mapping, bool on_demand, VerbsExporterOptions options);
  void AcceptLoop();

  VerbsExporterOptions options_;
  rdma::verbs::Device device_;
  rdma::verbs::ProtectionDomain pd_;
  rdma::verbs::CompletionQueue cq_;  // the QPs need one; a responder posts nothing to it
  rdma::verbs::Listener listener_;
  rdma::verbs::ExportMapping mapping_;
  rdma::verbs::Registrar registrar_;
  struct Client {
    // Push mode: this connection's own CQ (its WRITE completions); declared before the
    // connection, which goes first.
    std::optional<rdma::verbs::CompletionQueue> cq;
    rdma::verbs::Connection connection;
    VerbsNonce nonce{};
    bool granted = false;
    // When the agent ends it (require_grant): the grant's end, or the ungranted timeout.
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    std::mutex push_mu;               // one request's writes at a time
    std::atomic<bool> broken{false};  // a push failed: the QP is in error, Sweep ends it
  };
  // Drops gone clients and (require_grant) those past their deadline.
  void Sweep();

  // One request's writes (agent/verbs_push.cc).
  struct PushJob {
    std::shared_ptr<Client> client;
    PushLanding landing;
    std::vector<PushWrite> writes;
    PushDone done;
    std::chrono::steady_clock::time_point deadline{};  // set when its writes start
    size_t posted = 0, completed = 0;
    uint64_t bytes = 0;
    bool started = false;
  };
  void PushLoop();
  // Posts what the job may post and takes its completions: true when it ended (done called).
  bool Advance(PushJob& job, bool& progress);
  void EndPush(PushJob& job, Status status);

  mutable std::mutex mu_;
  // Shared: a push in flight keeps its client alive after Sweep dropped it.
  std::list<std::shared_ptr<Client>> clients_;  // guarded by mu_
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> grants_{0};
  std::atomic<uint64_t> revocations_{0};
  std::atomic<uint64_t> pushes_{0};
  std::atomic<uint64_t> pushed_bytes_{0};
  std::atomic<uint64_t> push_failures_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex push_mu_;
  std::condition_variable push_cv_;
  std::deque<std::unique_ptr<PushJob>> push_queue_;  // new pushes, guarded by push_mu_
  std::atomic<size_t> pushes_in_flight_{0};
  bool pushes_stopped_ = false;  // guarded by push_mu_ (StopPushes)
  std::thread push_thread_;      // last: joined first
};

// The agent's verbs at start: off (nullptr, the reason logged) when --verbs-port is off, a read
// key is set without --region-with-tokens, there is no device, or this kernel needs writable
// mappings of volume directories the agent may not write; an error only when --transports names
// verbs with --require-transports. Switches `export_mode` from map to map-writable where the
// kernel pins no read-only mapping.
Result<std::unique_ptr<VerbsExporter>> StartAgentVerbs(const AgentConfig& config, bool auth_enabled,
                                                       bool verbs_named, ExportMode& export_mode);

}  // namespace swrdma::agent
