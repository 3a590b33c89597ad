// The transport resources a UCX context selected, for startup logs, --list-devices and checks
// that the transports an operator asked for are there.
#pragma once

#include <string>
#include <vector>

#include "protocol/status.h"
#include "rdma/ucx/ucx_context.h"

namespace swrdma::rdma {

// A transport resource a UCX context selected, e.g. {"tcp", "lo"} or {"rc_mlx5", "mlx5_0:1"}.
struct UcxResource {
  std::string transport;
  std::string device;
};

// The resources `context` selected (after UCX_TLS / UCX_NET_DEVICES), parsed from
// ucp_context_print_info's "resource N : md M dev D flags -- <tl>/<dev>" lines. kInternal if the
// output has none (format changed).
Result<std::vector<UcxResource>> ListUcxResources(const UcxContext& context);

}  // namespace swrdma::rdma
