// Owners of a verbs device context and a protection domain.
//
// The device contexts come from librdmacm (rdma_get_devices), not from ibv_open_device: rdma_cm
// attaches every connection to its own context of the device a route goes through, and a queue
// pair must be created in a protection domain of that very context. Opening the device through
// librdmacm makes the protection domain, the memory regions and the connections agree.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <infiniband/verbs.h>

#include "protocol/status.h"

namespace swrdma::rdma::verbs {

// What the data path needs to know about a device.
struct DeviceCaps {
  uint64_t max_mr_size = 0;
  uint32_t max_qp_rd_atom = 0;       // READs a QP may serve at once (responder resources)
  uint32_t max_qp_init_rd_atom = 0;  // READs a QP may have outstanding (initiator depth)
  bool odp = false;                  // on-demand paging at all (IBV_ACCESS_ON_DEMAND)
  bool odp_rc_read = false;          // ODP for RC RDMA READ responder (what exports need)
  bool memory_windows = false;       // type 1 or 2 memory windows
  uint32_t vendor_id = 0;
  // Soft-RoCE (rdma_rxe: vendor id 0xffffff). Its ODP READ returned bytes from the wrong place
  // for READs that start inside a page (Linux 6.16, measured in tests/vm): exports do not page
  // on demand there unless asked to (agent --verbs-odp on).
  bool soft_roce = false;
};

class Device {
 public:
  // The device called `name` ("rxe0", "mlx5_0"), or with an empty name the first device whose
  // port 1 is active. kRdmaNoDevice when there is none (message says what to do).
  static Result<Device> Open(std::string_view name = {});

  Device(Device&& other) noexcept;
  Device& operator=(Device&& other) noexcept;
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ~Device();  // frees the list; librdmacm keeps the context itself open for the process

  ibv_context* get() const { return context_; }
  const std::string& name() const { return name_; }
  uint8_t port() const { return 1; }

  Result<ibv_port_attr> QueryPort() const;
  Result<DeviceCaps> QueryCaps() const;

 private:
  Device(ibv_context** list, ibv_context* context, std::string name)
      : list_(list), context_(context), name_(std::move(name)) {}

  ibv_context** list_ = nullptr;
  ibv_context* context_ = nullptr;
  std::string name_;
};

class ProtectionDomain {
 public:
  // ibv_alloc_pd on `device`, which must outlive the domain.
  static Result<ProtectionDomain> Open(const Device& device);

  ProtectionDomain(ProtectionDomain&& other) noexcept;
  ProtectionDomain& operator=(ProtectionDomain&& other) noexcept;
  ProtectionDomain(const ProtectionDomain&) = delete;
  ProtectionDomain& operator=(const ProtectionDomain&) = delete;
  ~ProtectionDomain();  // ibv_dealloc_pd; every MR and QP of the domain must be gone

  ibv_pd* get() const { return pd_; }
  ibv_context* context() const { return pd_ == nullptr ? nullptr : pd_->context; }

 private:
  explicit ProtectionDomain(ibv_pd* pd) : pd_(pd) {}
  ibv_pd* pd_ = nullptr;
};

}  // namespace swrdma::rdma::verbs
