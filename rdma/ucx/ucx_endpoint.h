// UcxEndpoint: owner of a ucp_ep_h connected to a remote worker by its packed address.
//
// Peer error handling: UCP_ERR_HANDLING_MODE_PEER makes UCX detect a dead peer (keepalive) and
// fail outstanding operations instead of hanging; the error callback records the failure here.
// UCX 1.13's shared-memory transports (posix, sysv) do it only with UCX_MM_ERROR_HANDLING=y
// (UcxContextOptions::shm_peer_failure, on by default here; keepalive then checks that the peer
// process exists). Without it, an endpoint that may only use shared memory fails with
// UCS_ERR_UNREACHABLE in PEER mode, and with a transport list that mixes tcp and shared memory,
// PEER mode leaves only the tcp lanes. kPreferPeer (the default) therefore falls back to no error
// handling when PEER is refused; deadlines on every wait then bound what a dead peer can cost.
// PEER mode matters to the remote side too: the endpoint UCX creates there to answer this one
// inherits the mode, and only in PEER mode does the remote worker ever release it (keepalive
// finds this process gone). Over tcp in PEER mode UCX drops the tcp RMA lane, over shared memory
// the cma one; gets are emulated over active messages either way on this kind of host.
//
// Thread: the endpoint belongs to its worker's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <ucp/api/ucp.h>

#include "protocol/status.h"
#include "rdma/ucx/ucx_worker.h"

namespace swrdma::rdma {

enum class PeerErrorHandling {
  kRequirePeer,  // PEER mode or fail
  kPreferPeer,   // PEER mode if the transports allow it, else none
  kNone,         // UCP_ERR_HANDLING_MODE_NONE
};

struct UcxEndpointOptions {
  PeerErrorHandling error_handling = PeerErrorHandling::kPreferPeer;
  // Waits for wireup to finish in Connect (progressing the worker), so that Transports() reports
  // the final lanes and an unreachable peer fails here rather than on the first get. Requires the
  // remote worker to be progressing. Zero: return right after ucp_ep_create.
  std::chrono::milliseconds connect_timeout{0};
};

// One lane of an endpoint, as ucp_ep_print_info reports it.
struct EndpointLane {
  int index = 0;
  std::string transport;          // "tcp", "posix", "sysv", "cma", "rc_mlx5", "dc_mlx5", ...
  std::string device;             // "lo", "memory", "mlx5_0:1"
  std::vector<std::string> uses;  // "am", "am_bw#0", "rma", "rma_bw#0", "amo", "wireup", ...
};

struct EndpointTransports {
  std::vector<EndpointLane> lanes;
  std::string raw;  // the full ucp_ep_print_info text, for logs

  // Distinct transport names over all lanes, in lane order.
  std::vector<std::string> names() const;
  // Transports of the lanes tagged for RMA ("rma", "rma_bw#N"). Empty proves gets are emulated
  // over the active-message lane (the remote worker must progress to serve them); non-empty does
  // not prove they are one-sided: a get uses an RMA lane only if the target's rkey carries that
  // lane's memory domain (shared memory over a file mapping does not: cma is tagged rma_bw here,
  // yet gets are emulated).
  std::vector<std::string> rma_names() const;
  // "tcp/lo[am,rma_bw#0] ..." for logs.
  std::string Summary() const;
};

// Parses ucp_ep_print_info output. Exposed for tests; kInternal if no lane line is found.
Result<EndpointTransports> ParseEndpointInfo(std::string_view text);

namespace detail {
// Endpoint state at a stable address: the error callback and in-flight gets point here.
struct EndpointCore {
  WorkerCore* worker = nullptr;
  ucp_ep_h handle = nullptr;
  bool peer_error_handling = false;
  Status failure;  // set by the error callback or by Abort
};

// UcxEndpoint::Close and Abort, for owners holding only the core (GetBatch).
Status CloseEndpoint(EndpointCore& core, bool force, Deadline deadline);
void AbortEndpoint(EndpointCore& core, const Status& reason);
}  // namespace detail

class UcxEndpoint {
 public:
  // Connects `worker` to the worker whose packed address is `remote_address`. The worker must
  // outlive the endpoint.
  static Result<UcxEndpoint> Connect(UcxWorker& worker, std::span<const uint8_t> remote_address,
                                     const UcxEndpointOptions& options = {});

  UcxEndpoint(UcxEndpoint&& other) noexcept = default;
  UcxEndpoint& operator=(UcxEndpoint&& other) noexcept;
  UcxEndpoint(const UcxEndpoint&) = delete;
  UcxEndpoint& operator=(const UcxEndpoint&) = delete;
  // Close(kFlush, 1 s) or kForce after a failure; the outcome is ignored.
  ~UcxEndpoint();

  ucp_ep_h get() const { return core_ ? core_->handle : nullptr; }
  detail::EndpointCore* core() const { return core_.get(); }
  bool peer_error_handling() const { return core_ && core_->peer_error_handling; }
  // Ok while usable; the recorded failure after the error callback ran or after Close/Abort.
  Status status() const;

  // The transports this endpoint uses. UCX 1.13 has no ucp_ep_query field for it (UCX 1.14
  // adds UCP_EP_ATTR_FIELD_TRANSPORTS), so this parses ucp_ep_print_info's lane lines. Lanes
  // can change until wireup completes: query after a first operation or a connect_timeout.
  Result<EndpointTransports> Transports() const;
  // ucp_ep_print_info as text: lanes, protocol thresholds (empty when closed).
  std::string PrintInfo() const;

  enum class CloseMode {
    kFlush,  // completes outstanding operations, tells the peer
    kForce,  // drops everything now; outstanding operations complete with UCS_ERR_CANCELED
  };
  // ucp_ep_close_nbx, progressing the worker until the close completes or `deadline` passes.
  // An endpoint whose peer failed is always force-closed (UCX requires it). On timeout the close
  // request is handed to the worker, which releases it once UCX reports it complete (never
  // earlier), and kTimeout is returned. Idempotent: later calls return Ok.
  Status Close(CloseMode mode, Deadline deadline);

  // Gives up on the endpoint because of `reason` (e.g. gets that outlived their deadline: UCX
  // cannot cancel an RMA request, ucp_request_cancel only acts on receives). With peer error
  // handling it force-closes now, which completes every outstanding operation with
  // UCS_ERR_CANCELED. Without, a force close would leave outstanding emulated gets to be
  // answered into a destroyed endpoint, so the endpoint only refuses new gets and is flushed
  // closed by its destructor. Either way status() reports `reason` afterwards.
  void Abort(const Status& reason);

 private:
  explicit UcxEndpoint(std::unique_ptr<detail::EndpointCore> core) : core_(std::move(core)) {}

  std::unique_ptr<detail::EndpointCore> core_;
};

}  // namespace swrdma::rdma
