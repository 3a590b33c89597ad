#include "rdma/devices.h"

#include <arpa/inet.h>
#include <infiniband/verbs.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>

namespace swrdma::rdma {
namespace {

struct DeviceListDeleter {
  void operator()(ibv_device** list) const { ibv_free_device_list(list); }
};
using DeviceList = std::unique_ptr<ibv_device*, DeviceListDeleter>;

struct ContextDeleter {
  void operator()(ibv_context* context) const { ibv_close_device(context); }
};
using DeviceContext = std::unique_ptr<ibv_context, ContextDeleter>;

std::string LinkLayerName(uint8_t link_layer) {
  switch (link_layer) {
    case IBV_LINK_LAYER_INFINIBAND:
      return "InfiniBand";
    case IBV_LINK_LAYER_ETHERNET:
      return "Ethernet (RoCE)";
    default:
      return "unspecified";
  }
}

std::string GidTypeName(uint32_t type) {
  switch (type) {
    case IBV_GID_TYPE_IB:
      return "IB";
    case IBV_GID_TYPE_ROCE_V1:
      return "RoCE v1";
    case IBV_GID_TYPE_ROCE_V2:
      return "RoCE v2";
    default:
      return "unknown";
  }
}

uint32_t MtuBytes(ibv_mtu mtu) {
  switch (mtu) {
    case IBV_MTU_256:
      return 256;
    case IBV_MTU_512:
      return 512;
    case IBV_MTU_1024:
      return 1024;
    case IBV_MTU_2048:
      return 2048;
    case IBV_MTU_4096:
      return 4096;
  }
  return 0;
}

// The port state as ibv_devinfo prints it. Not ibv_port_state_str: that says "active", "down",
// and the agent's logs, metrics help and device monitor speak ibv_devinfo's names (a comparison
// with "PORT_ACTIVE" against ibv_port_state_str never matched: no port was ever counted active).
std::string_view PortStateName(ibv_port_state state) {
  switch (state) {
    case IBV_PORT_NOP:
      return "PORT_NOP";
    case IBV_PORT_DOWN:
      return "PORT_DOWN";
    case IBV_PORT_INIT:
      return "PORT_INIT";
    case IBV_PORT_ARMED:
      return "PORT_ARMED";
    case IBV_PORT_ACTIVE:
      return "PORT_ACTIVE";
    case IBV_PORT_ACTIVE_DEFER:
      return "PORT_ACTIVE_DEFER";
  }
  return "PORT_UNKNOWN";
}

std::string GuidText(__be64 guid) {
  uint64_t host = be64toh(guid);
  return fmt::format("{:04x}:{:04x}:{:04x}:{:04x}", (host >> 48) & 0xffff, (host >> 32) & 0xffff,
                     (host >> 16) & 0xffff, host & 0xffff);
}

std::vector<RdmaGid> QueryGids(ibv_context* context, uint32_t port, int table_length) {
  std::vector<RdmaGid> gids;
  for (int index = 0; index < table_length; ++index) {
    ibv_gid_entry entry{};
    // Fails (ENODATA) for unused entries on RoCE; those are simply absent.
    if (ibv_query_gid_ex(context, port, index, &entry, 0) != 0) continue;
    static constexpr uint8_t kZero[16] = {};
    if (std::memcmp(entry.gid.raw, kZero, sizeof(kZero)) == 0) continue;
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(AF_INET6, entry.gid.raw, text, sizeof(text));
    gids.push_back(RdmaGid{.index = index, .gid = text, .type = GidTypeName(entry.gid_type)});
  }
  return gids;
}

RdmaDevice Describe(ibv_device* device) {
  RdmaDevice out;
  out.name = ibv_get_device_name(device);
  out.node_guid = GuidText(ibv_get_device_guid(device));
  DeviceContext context(ibv_open_device(device));
  if (!context) {
    out.problems.push_back(
        fmt::format("ibv_open_device: {} (is the device's driver loaded and "
                    "/dev/infiniband readable?)",
                    std::strerror(errno)));
    return out;
  }
  ibv_device_attr attr{};
  if (int rc = ibv_query_device(context.get(), &attr); rc != 0) {
    out.problems.push_back(fmt::format("ibv_query_device: {}", std::strerror(rc)));
    return out;
  }
  out.firmware = attr.fw_ver;
  out.max_mr_size = attr.max_mr_size;
  for (uint32_t number = 1; number <= attr.phys_port_cnt; ++number) {
    ibv_port_attr port{};
    if (int rc = ibv_query_port(context.get(), number, &port); rc != 0) {
      out.problems.push_back(fmt::format("ibv_query_port {}: {}", number, std::strerror(rc)));
      continue;
    }
    out.ports.push_back(RdmaPort{.number = number,
                                 .state = std::string(PortStateName(port.state)),
                                 .link_layer = LinkLayerName(port.link_layer),
                                 .lid = port.lid,
                                 .active_mtu = MtuBytes(port.active_mtu),
                                 .gids = QueryGids(context.get(), number, port.gid_tbl_len)});
  }
  return out;
}

}  // namespace

RdmaDiscovery DiscoverRdmaDevices() {
  RdmaDiscovery out;
  int count = 0;
  errno = 0;
  DeviceList list(ibv_get_device_list(&count));
  if (!list) {
    // ENOSYS: the kernel has no RDMA support at all; same outcome for the caller.
    int err = errno;
    out.messages.emplace_back(kNoRdmaDevicesMessage);
    if (err != 0) {
      out.messages.push_back(fmt::format("ibv_get_device_list: {}{}", std::strerror(err),
                                         err == ENOSYS ? " (no RDMA support in this kernel)" : ""));
    }
    return out;
  }
  if (count == 0) {
    out.messages.emplace_back(kNoRdmaDevicesMessage);
    return out;
  }
  for (int i = 0; i < count; ++i) {
    RdmaDevice device = Describe(list.get()[i]);
    for (const std::string& problem : device.problems) {
      out.messages.push_back(device.name + ": " + problem);
    }
    out.devices.push_back(std::move(device));
  }
  return out;
}

std::string RdmaDiscovery::Summary() const {
  std::string out;
  for (const RdmaDevice& device : devices) {
    out += fmt::format("{} guid {} fw {} max_mr_size {}\n", device.name, device.node_guid,
                       device.firmware, device.max_mr_size);
    for (const RdmaPort& port : device.ports) {
      out += fmt::format("  port {}: {} {} lid {} mtu {} gids {}\n", port.number, port.state,
                         port.link_layer, port.lid, port.active_mtu, port.gids.size());
      for (const RdmaGid& gid : port.gids) {
        out += fmt::format("    gid[{}] {} {}\n", gid.index, gid.gid, gid.type);
      }
    }
  }
  for (const std::string& message : messages)
    out += message + "\n";
  return out;
}

}  // namespace swrdma::rdma
