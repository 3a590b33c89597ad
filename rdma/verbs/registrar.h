// The verbs side of the transport-neutral Registrar (rdma/registration.h): memory regions in one
// protection domain, for the buffer pool (where a client's RDMA READs land) and for the agent's
// exports (REMOTE_READ-only registrations of volume mappings).
#pragma once

#include <memory>

#include "rdma/registration.h"
#include "rdma/verbs/device.h"
#include "rdma/verbs/memory_region.h"

namespace swrdma::rdma::verbs {

// Which side registers: the access a RegionAccess maps to differs. An exporter gives peers read
// access and nothing else (kRemoteRead -> REMOTE_READ only; kRemoteReadWrite is refused: no
// export is ever remotely writable). A reader's buffers are written by its own NIC only
// (LOCAL_WRITE) whatever is asked for. A landing pool (push: the agent RDMA WRITEs records into
// it) is LOCAL_WRITE | REMOTE_WRITE and nothing else: never readable by a peer; its role is
// separate so that no other buffer of the reader is ever remotely writable.
enum class RegistrarRole { kExporter, kReader, kLanding };

class Registrar final : public rdma::Registrar {
 public:
  // `pd` must outlive the registrar and every registration it made. `on_demand` (exporter
  // only): register exports REMOTE_READ | ON_DEMAND, pinning nothing (the device must offer
  // ODP for RC READ: DeviceCaps::odp_rc_read).
  Registrar(const ProtectionDomain& pd, RegistrarRole role, bool on_demand = false)
      : pd_(&pd), role_(role), on_demand_(on_demand && role == RegistrarRole::kExporter) {}

  Result<std::unique_ptr<Registration>> Register(void* address, size_t length,
                                                 RegionAccess access) const override;
  bool PinsMemory() const override { return !on_demand_; }
  bool on_demand() const { return on_demand_; }

 private:
  const ProtectionDomain* pd_;
  RegistrarRole role_;
  bool on_demand_;
};

// The memory region behind a Registration this registrar made (native() is its ibv_mr*).
inline uint32_t LocalKeyOf(const Registration& r) {
  return static_cast<const ibv_mr*>(r.native())->lkey;
}

}  // namespace swrdma::rdma::verbs
