// Owner of one verbs memory region (ibv_reg_mr).
//
// The export case registers with IBV_ACCESS_REMOTE_READ and nothing else: no LOCAL_WRITE, no
// REMOTE_WRITE, no REMOTE_ATOMIC, no MW_BIND. The NIC then refuses any peer's write or atomic
// into the memory whatever the mapping's protection, and the kernel can pin a read-only file
// mapping (on kernels that pin read-only shared file mappings at all, see file_export.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <infiniband/verbs.h>

#include "protocol/status.h"
#include "rdma/registration.h"
#include "rdma/verbs/device.h"

namespace swrdma::rdma::verbs {

enum class Access {
  kRemoteReadOnly,  // IBV_ACCESS_REMOTE_READ only: exported volumes
  // REMOTE_READ | ON_DEMAND: exported volumes on a device with on-demand paging for RC READ.
  // Nothing is pinned: the device faults pages in through the kernel as peers read them, and
  // the pages follow the page cache (eviction, truncation) like any mapping's.
  kRemoteReadOnDemand,
  kLocalWrite,   // IBV_ACCESS_LOCAL_WRITE: where our own RDMA READs land; peers get nothing
  kRemoteWrite,  // LOCAL_WRITE | REMOTE_WRITE: a landing buffer a peer pushes into
};

// The ibv_access_flags value of `access`.
int AccessFlags(Access access);
std::string_view AccessName(Access access);

class MemoryRegion {
 public:
  // Registers [address, address + length) of memory the caller owns and keeps mapped for the
  // region's lifetime. kUnsupported (EFAULT) when the kernel refuses to pin that memory for
  // that access (a read-only file mapping on a kernel that cannot), kResourceExhausted when the
  // locked-memory limit is reached (ulimit -l).
  static Result<MemoryRegion> Open(const ProtectionDomain& pd, void* address, size_t length,
                                   Access access);

  MemoryRegion(MemoryRegion&& other) noexcept;
  MemoryRegion& operator=(MemoryRegion&& other) noexcept;
  MemoryRegion(const MemoryRegion&) = delete;
  MemoryRegion& operator=(const MemoryRegion&) = delete;
  ~MemoryRegion();  // ibv_dereg_mr: from then on the rkey fails with a remote access error

  ibv_mr* get() const { return mr_; }
  void* address() const { return mr_ == nullptr ? nullptr : mr_->addr; }
  size_t length() const { return mr_ == nullptr ? 0 : mr_->length; }
  uint32_t lkey() const { return mr_ == nullptr ? 0 : mr_->lkey; }
  uint32_t rkey() const { return mr_ == nullptr ? 0 : mr_->rkey; }
  Access access() const { return access_; }

  // Address, length and the rkey (4 bytes, little-endian) as a peer needs them.
  RemoteRegion Describe(uint64_t generation) const;

 private:
  MemoryRegion(ibv_mr* mr, Access access) : mr_(mr), access_(access) {}
  ibv_mr* mr_ = nullptr;
  Access access_ = Access::kRemoteReadOnly;
};

// The rkey packed in a RemoteRegion by MemoryRegion::Describe; kInvalidArgument unless it has
// exactly 4 bytes.
Result<uint32_t> UnpackRkey(const RemoteRegion& region);

}  // namespace swrdma::rdma::verbs
