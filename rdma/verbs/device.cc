#include "rdma/verbs/device.h"

#include <cerrno>
#include <utility>

#include <rdma/rdma_cma.h>

#include "rdma/verbs/verbs_status.h"

namespace swrdma::rdma::verbs {

Result<Device> Device::Open(std::string_view name) {
  int count = 0;
  errno = 0;
  ibv_context** list = rdma_get_devices(&count);
  if (list == nullptr || count == 0) {
    int error = errno;
    if (list != nullptr) rdma_free_devices(list);
    return Error(Code::kRdmaNoDevice,
                 "no RDMA devices (rdma_get_devices found none" +
                     (error != 0 ? std::string(": ") + strerrordesc_np(error) : std::string()) +
                     "); on a host without a NIC load Soft-RoCE: modprobe rdma_rxe; rdma link "
                     "add rxe0 type rxe netdev <interface>");
  }
  std::string seen;
  for (int i = 0; i < count; ++i) {
    std::string device_name = ibv_get_device_name(list[i]->device);
    if (!seen.empty()) seen += ", ";
    seen += device_name;
    if (!name.empty()) {
      if (device_name == name) return Device(list, list[i], device_name);
      continue;
    }
    ibv_port_attr port{};
    if (ibv_query_port(list[i], 1, &port) == 0 && port.state == IBV_PORT_ACTIVE) {
      return Device(list, list[i], device_name);
    }
  }
  rdma_free_devices(list);
  if (!name.empty()) {
    return Error(Code::kRdmaNoDevice,
                 "no RDMA device called " + std::string(name) + " (devices: " + seen + ")");
  }
  return Error(Code::kRdmaNoDevice, "no RDMA device with an active port 1 (devices: " + seen +
                                        "); check the link (rdma link show, ibv_devinfo)");
}

Device::Device(Device&& other) noexcept
    : list_(std::exchange(other.list_, nullptr)),
      context_(std::exchange(other.context_, nullptr)),
      name_(std::move(other.name_)) {}

Device& Device::operator=(Device&& other) noexcept {
  if (this != &other) {
    if (list_ != nullptr) rdma_free_devices(list_);
    list_ = std::exchange(other.list_, nullptr);
    context_ = std::exchange(other.context_, nullptr);
    name_ = std::move(other.name_);
  }
  return *this;
}

Device::~Device() {
  if (list_ != nullptr) rdma_free_devices(list_);
}

Result<ibv_port_attr> Device::QueryPort() const {
  ibv_port_attr attr{};
  if (int rc = ibv_query_port(context_, port(), &attr); rc != 0) {
    return Error(FromErrno(rc, "ibv_query_port " + name_));
  }
  return attr;
}

Result<DeviceCaps> Device::QueryCaps() const {
  ibv_device_attr_ex attr{};
  if (int rc = ibv_query_device_ex(context_, nullptr, &attr); rc != 0) {
    return Error(FromErrno(rc, "ibv_query_device_ex " + name_));
  }
  DeviceCaps caps;
  caps.max_mr_size = attr.orig_attr.max_mr_size;
  caps.max_qp_rd_atom = static_cast<uint32_t>(attr.orig_attr.max_qp_rd_atom);
  caps.max_qp_init_rd_atom = static_cast<uint32_t>(attr.orig_attr.max_qp_init_rd_atom);
  caps.odp = (attr.odp_caps.general_caps & IBV_ODP_SUPPORT) != 0;
  caps.odp_rc_read =
      caps.odp && (attr.odp_caps.per_transport_caps.rc_odp_caps & IBV_ODP_SUPPORT_READ) != 0;
  caps.vendor_id = attr.orig_attr.vendor_id;
  caps.soft_roce = caps.vendor_id == 0xffffff;  // RXE_VENDOR_ID
  caps.memory_windows =
      (attr.orig_attr.device_cap_flags & (IBV_DEVICE_MEM_WINDOW | IBV_DEVICE_MEM_WINDOW_TYPE_2A |
                                          IBV_DEVICE_MEM_WINDOW_TYPE_2B)) != 0;
  return caps;
}

Result<ProtectionDomain> ProtectionDomain::Open(const Device& device) {
  errno = 0;
  ibv_pd* pd = ibv_alloc_pd(device.get());
  if (pd == nullptr) {
    return Error(FromErrno(errno != 0 ? errno : ENOMEM, "ibv_alloc_pd on " + device.name()));
  }
  return ProtectionDomain(pd);
}

ProtectionDomain::ProtectionDomain(ProtectionDomain&& other) noexcept
    : pd_(std::exchange(other.pd_, nullptr)) {}

ProtectionDomain& ProtectionDomain::operator=(ProtectionDomain&& other) noexcept {
  if (this != &other) {
    if (pd_ != nullptr) ibv_dealloc_pd(pd_);
    pd_ = std::exchange(other.pd_, nullptr);
  }
  return *this;
}

ProtectionDomain::~ProtectionDomain() {
  if (pd_ != nullptr) ibv_dealloc_pd(pd_);
}

}  // namespace swrdma::rdma::verbs
