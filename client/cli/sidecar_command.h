// `swrdma sidecar`: the drop-in sidecar for `weed mount -rdma.enabled -rdma.sidecar=HOST:PORT`
// (sidecar/sidecar.h), in the foreground until SIGTERM/SIGINT.
#pragma once

namespace CLI {
class App;
}

namespace swrdma::cli {

void AddSidecarCommand(CLI::App& app);

}  // namespace swrdma::cli
