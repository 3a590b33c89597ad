// UcxContext: owner of a ucp_context_h (one UCX "application context": the transports and memory
// domains a process may use). Created once per process or per role (agent, client); workers,
// memory regions and everything else hang off it and must be destroyed before it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <ucp/api/ucp.h>

#include "protocol/status.h"

namespace swrdma::rdma {

struct UcxContextOptions {
  // UCX_TLS: comma-separated transports, e.g. "tcp", "posix,sysv,cma", "rc,dc,self". Unset: the
  // environment's UCX_TLS, or UCX's default (all).
  std::optional<std::string> transports;
  // UCX_NET_DEVICES: e.g. "lo", "mlx5_0:1". Unset: the environment's, or all devices.
  std::optional<std::string> net_devices;
  // Any other UCX option by name without the UCX_ prefix, e.g. {"TCP_KEEPINTVL", "1s"}.
  std::map<std::string, std::string> config;
  // UCP_FEATURE_WAKEUP: lets workers hand out an event fd (UcxWorker::efd) to block on instead
  // of busy polling.
  bool wakeup = false;
  // UCX_MM_ERROR_HANDLING=y: lets the shared-memory transports posix and sysv take endpoints with
  // peer error handling (UCX 1.13 ships it off: uct_mm_iface_query). Without it an endpoint that
  // may use only shared memory cannot have UCP_ERR_HANDLING_MODE_PEER, and then the worker it
  // connects to never learns that the process went away: the reply endpoint UCX created there,
  // with the peer's segments mapped, stays until that worker is destroyed. With it, UCX's
  // keepalive (every UCX_KEEPALIVE_INTERVAL, 20 s) checks that the peer process still exists (pid
  // and start time: uct_ep_keepalive_check) and destroys the endpoint once it is gone. Both sides
  // need it (the reply endpoint inherits the client's mode): an agent without it drops a peer-mode
  // client's shared-memory requests silently, so clients ask for it only from agents that
  // advertise it (/v1/info "shm_peer_failure"). Not applied when the environment
  // (UCX_MM_ERROR_HANDLING, UCX_POSIX_ERROR_HANDLING, UCX_SYSV_ERROR_HANDLING) or `config` sets
  // it, nor when the transports cannot include posix/sysv (UCX would warn about an unused option).
  bool shm_peer_failure = true;
  // UCX_TCP_TX_SEG_SIZE and UCX_TCP_RX_SEG_SIZE: the size of one tcp active message, so of each
  // piece of an emulated get's reply (the sender's TX size counts; RX is set alike so that the
  // peer side of this context receives them whole). UCX 1.13's 8 KiB default cuts a 1 MiB get
  // into 128 messages: measured here (loopback, 2 vCPUs), 1 MiB gets made 1.0-1.1 GB/s with it
  // and 3.2-3.8 GB/s with 64 KiB, 4 KiB gets the same; 256 KiB was slower for both (2.9 GB/s,
  // and 4 KiB gets at 64 in flight -25 %). Per-connection memory grows with it. 0: UCX's default.
  // Not applied to a variable the environment or `config` sets, nor when the transports cannot
  // include tcp.
  size_t tcp_segment_bytes = size_t{64} << 10;
  // UCP_FEATURE_RMA: one-sided gets and puts. Off by default, and off in the agent and the
  // client: on transports without hardware RMA (tcp, shared memory) UCX emulates it with active
  // messages whose handlers read and write whatever address a peer names (src/ucp/rma/rma_sw.c;
  // no rkey or bounds check up to UCX 1.22), and on InfiniBand UCX registers memory remotely
  // writable. Those handlers exist only on workers of a context that asked for RMA or AMO
  // (ucp_worker_set_am_handlers), so a context without them answers no forged get or put
  // (tests/e2e/hostile_peer_test.sh). Only the bare-UCX benchmark ceiling turns it on.
  bool rma = false;
};

// Configuration is read from the environment first (ucp_config_read: every UCX_* variable
// applies), then the explicit options above are applied on top: an option that is set wins over
// the environment variable of the same name, an unset one leaves the environment in charge.
// Features requested: AM always, RMA only when asked (see UcxContextOptions::rma), WAKEUP when
// asked. Never AMO.
class UcxContext {
 public:
  static Result<UcxContext> Create(const UcxContextOptions& options = {});

  UcxContext(UcxContext&& other) noexcept;
  UcxContext& operator=(UcxContext&& other) noexcept;
  UcxContext(const UcxContext&) = delete;
  UcxContext& operator=(const UcxContext&) = delete;
  ~UcxContext();
  ucp_context_h get() const { return context_; }
  bool wakeup() const { return wakeup_; }
  // Whether shared-memory transports may take peer-error-handling endpoints in this context
  // (UcxContextOptions::shm_peer_failure applied, or the environment/config turned it on). An
  // agent advertises it so that clients know they may ask for peer mode over shared memory.
  bool shm_peer_failure() const { return shm_peer_failure_; }
  // What UCX_TLS was in force: the option, else $UCX_TLS, else "all (UCX default)".
  const std::string& transports() const { return transports_; }

  // ucp_context_print_info: memory domains and transport resources the context selected.
  std::string PrintInfo() const;

 private:
  UcxContext(ucp_context_h context, bool wakeup, std::string transports)
      : context_(context), wakeup_(wakeup), transports_(std::move(transports)) {}

  ucp_context_h context_ = nullptr;
  bool wakeup_ = false;
  bool shm_peer_failure_ = false;
  std::string transports_;
};

}  // namespace swrdma::rdma
