// Registered memory and the keys that let a peer read it.
//
// MemoryRegion (target side): ucp_mem_map of an existing address range (e.g. a MappedFile) or of
// memory UCX allocates; PackRkey gives the bytes a peer needs. RemoteRegion: what crosses the
// wire to describe it. RemoteKey (reader side): the unpacked key for one endpoint, with the
// region's bounds so that reads outside it are rejected before they are posted.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <ucp/api/ucp.h>

#include "protocol/status.h"
#include "rdma/registration.h"
#include "rdma/ucx/ucx_context.h"
#include "rdma/ucx/ucx_endpoint.h"

namespace swrdma::rdma {

class MemoryRegion {
 public:
  // Registers [address, address + length), memory the caller owns and keeps alive (and mapped)
  // for the region's lifetime. A read-only file mapping is fine with kRemoteRead.
  static Result<MemoryRegion> Map(const UcxContext& context, void* address, size_t length,
                                  RegionAccess access = RegionAccess::kRemoteRead);
  // Lets UCX allocate and register `length` bytes (UCP_MEM_MAP_ALLOCATE), e.g. for bounce
  // buffers; freed with the region.
  static Result<MemoryRegion> Allocate(const UcxContext& context, size_t length,
                                       RegionAccess access = RegionAccess::kRemoteReadWrite);

  MemoryRegion(MemoryRegion&& other) noexcept;
  MemoryRegion& operator=(MemoryRegion&& other) noexcept;
  MemoryRegion(const MemoryRegion&) = delete;
  MemoryRegion& operator=(const MemoryRegion&) = delete;
  ~MemoryRegion();  // ucp_mem_unmap

  ucp_mem_h get() const { return memh_; }
  void* address() const { return address_; }
  size_t length() const { return length_; }

  // ucp_rkey_pack: the bytes a peer unpacks with RemoteKey::Unpack.
  Result<std::vector<uint8_t>> PackRkey() const;
  // Address, length and packed key in one descriptor.
  Result<RemoteRegion> Describe(uint64_t generation) const;

 private:
  MemoryRegion(ucp_context_h context, ucp_mem_h memh, void* address, size_t length)
      : context_(context), memh_(memh), address_(address), length_(length) {}
  void Release();

  ucp_context_h context_ = nullptr;
  ucp_mem_h memh_ = nullptr;
  void* address_ = nullptr;
  size_t length_ = 0;
};

// The buffer pool's (and any other neutral user's) way to register with UCX. The context must
// outlive the registrar and every registration it made.
class UcxRegistrar final : public Registrar {
 public:
  explicit UcxRegistrar(const UcxContext& context) : context_(&context) {}
  Result<std::unique_ptr<Registration>> Register(void* address, size_t length,
                                                 RegionAccess access) const override;

 private:
  const UcxContext* context_;
};

// The UCX memory handle of a registration made by UcxRegistrar (null for none).
inline ucp_mem_h UcxMemh(const Registration* registration) {
  return registration == nullptr ? nullptr : static_cast<ucp_mem_h>(registration->native());
}

class RemoteKey {
 public:
  // ucp_ep_rkey_unpack of region.rkey for `endpoint` (a key is usable only with the endpoint it
  // was unpacked for). Keeps region's address, length and generation to check reads against.
  // An rkey UCX refuses (e.g. packed for transports this endpoint lacks) is kRdmaRemoteAccess.
  // UCX does not validate an rkey's content: a corrupted key can crash the process inside UCX
  // (seen with sysv keys in UCX 1.13). Unpack only keys that came from the peer itself over a
  // channel that guarantees integrity.
  static Result<RemoteKey> Unpack(const UcxEndpoint& endpoint, const RemoteRegion& region);

  RemoteKey(RemoteKey&& other) noexcept;
  RemoteKey& operator=(RemoteKey&& other) noexcept;
  RemoteKey(const RemoteKey&) = delete;
  RemoteKey& operator=(const RemoteKey&) = delete;
  ~RemoteKey();  // ucp_rkey_destroy; must run before the worker is destroyed

  ucp_rkey_h get() const { return rkey_; }
  uint64_t address() const { return address_; }
  uint64_t length() const { return length_; }
  uint64_t generation() const { return generation_; }

  // Ok when [remote_address, remote_address + bytes) is inside the region, else
  // kRdmaRemoteAccess naming both ranges. Gets call this before posting: on emulated transports
  // (tcp, shared memory) the target serves any address it is sent without checking, so the
  // check has to happen here.
  Status CheckRange(uint64_t remote_address, uint64_t bytes) const;

 private:
  RemoteKey(ucp_rkey_h rkey, uint64_t address, uint64_t length, uint64_t generation)
      : rkey_(rkey), address_(address), length_(length), generation_(generation) {}

  ucp_rkey_h rkey_ = nullptr;
  uint64_t address_ = 0;
  uint64_t length_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace swrdma::rdma
