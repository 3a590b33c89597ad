// What RDMA hardware this host has (libibverbs), for startup logs and for choosing transports
// (UCX's transports: rdma/ucx/ucx_resources.h). Discovery never fails its caller: a host without
// RDMA devices is a normal host (UCX then uses tcp and shared memory), so it yields an empty list
// and a message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"

namespace swrdma::rdma {

inline constexpr std::string_view kNoRdmaDevicesMessage =
    "no RDMA devices found (ibv_get_device_list returned none); UCX will use tcp/shared memory";

struct RdmaGid {
  int index = 0;
  std::string gid;   // IPv6 text form, e.g. "fe80::ba59:9fff:fe12:3456"
  std::string type;  // "IB", "RoCE v1", "RoCE v2"
};

struct RdmaPort {
  uint32_t number = 0;        // 1-based, as verbs numbers ports
  std::string state;          // ibv_port_state_str: "PORT_ACTIVE", "PORT_DOWN", ...
  std::string link_layer;     // "InfiniBand", "Ethernet (RoCE)", "unspecified"
  uint16_t lid = 0;           // InfiniBand only
  uint32_t active_mtu = 0;    // bytes
  std::vector<RdmaGid> gids;  // non-zero entries only
};

struct RdmaDevice {
  std::string name;          // "mlx5_0"
  std::string node_guid;     // "0c42:a103:0012:3456"
  std::string firmware;      // fw_ver
  uint64_t max_mr_size = 0;  // largest memory region one registration may cover
  std::vector<RdmaPort> ports;
  std::vector<std::string> problems;  // queries that failed on this device
};

struct RdmaDiscovery {
  std::vector<RdmaDevice> devices;
  // Human-readable notes: kNoRdmaDevicesMessage when there is nothing, or why a device could not
  // be opened.
  std::vector<std::string> messages;

  // Multi-line text for logs: one line per device and port.
  std::string Summary() const;
};

// Lists RDMA devices with libibverbs. Never an error: problems go to `messages`.
RdmaDiscovery DiscoverRdmaDevices();

}  // namespace swrdma::rdma
