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
};

// Configuration is read from the environment first (ucp_config_read: every UCX_* variable
// applies), then the explicit options above are applied on top: an option that is set wins over
// the environment variable of the same name, an unset one leaves the environment in charge.
// Features requested: RMA and AM always (one-sided gets; UCX emulates RMA over active messages on
// transports without hardware RMA), WAKEUP when asked.
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
  // What UCX_TLS was in force: the option, else $UCX_TLS, else "all (UCX default)".
  const std::string& transports() const { return transports_; }

  // ucp_context_print_info: memory domains and transport resources the context selected.
  std::string PrintInfo() const;

 private:
  UcxContext(ucp_context_h context, bool wakeup, std::string transports)
      : context_(context), wakeup_(wakeup), transports_(std::move(transports)) {}

  ucp_context_h context_ = nullptr;
  bool wakeup_ = false;
  std::string transports_;
};

}  // namespace swrdma::rdma
