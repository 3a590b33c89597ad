#include "rdma/ucx/memory_region.h"

#include <fmt/format.h>
#include <utility>

#include "rdma/ucx/ucx_status.h"

namespace swrdma::rdma {
namespace {

unsigned ProtFor(RegionAccess access) {
  unsigned prot = UCP_MEM_MAP_PROT_LOCAL_READ | UCP_MEM_MAP_PROT_REMOTE_READ;
  if (access == RegionAccess::kRemoteReadWrite) {
    prot |= UCP_MEM_MAP_PROT_LOCAL_WRITE | UCP_MEM_MAP_PROT_REMOTE_WRITE;
  }
  return prot;
}

Result<ucp_mem_h> MapMemory(const UcxContext& context, void* address, size_t length,
                            RegionAccess access, bool allocate) {
  if (context.get() == nullptr) {
    return Error(Code::kInvalidArgument, "registering memory: the UCX context is empty");
  }
  if (length == 0) {
    return Error(Code::kInvalidArgument, "registering memory: length is 0 (UCX cannot map it)");
  }
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                      UCP_MEM_MAP_PARAM_FIELD_FLAGS | UCP_MEM_MAP_PARAM_FIELD_PROT;
  params.address = address;
  params.length = length;
  params.flags = allocate ? UCP_MEM_MAP_ALLOCATE : 0;
  params.prot = ProtFor(access);
  ucp_mem_h memh = nullptr;
  SWRDMA_RETURN_IF_ERROR(FromUcs(ucp_mem_map(context.get(), &params, &memh),
                                 fmt::format("registering {} bytes at {} with UCX (ucp_mem_map{})",
                                             length, address, allocate ? ", allocate" : "")));
  return memh;
}

}  // namespace

Result<MemoryRegion> MemoryRegion::Map(const UcxContext& context, void* address, size_t length,
                                       RegionAccess access) {
  if (address == nullptr) {
    return Error(Code::kInvalidArgument, "registering memory: address is null");
  }
  SWRDMA_ASSIGN_OR_RETURN(ucp_mem_h memh,
                          MapMemory(context, address, length, access, /*allocate=*/false));
  return MemoryRegion(context.get(), memh, address, length);
}

Result<MemoryRegion> MemoryRegion::Allocate(const UcxContext& context, size_t length,
                                            RegionAccess access) {
  SWRDMA_ASSIGN_OR_RETURN(ucp_mem_h memh,
                          MapMemory(context, nullptr, length, access, /*allocate=*/true));
  MemoryRegion region(context.get(), memh, nullptr, 0);
  // UCX chose the address (and may have rounded the length up): ask it.
  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
  SWRDMA_RETURN_IF_ERROR(
      FromUcs(ucp_mem_query(region.memh_, &attr), "querying UCX-allocated memory (ucp_mem_query)"));
  region.address_ = attr.address;
  region.length_ = attr.length;
  return region;
}

MemoryRegion::MemoryRegion(MemoryRegion&& other) noexcept
    : context_(std::exchange(other.context_, nullptr)),
      memh_(std::exchange(other.memh_, nullptr)),
      address_(std::exchange(other.address_, nullptr)),
      length_(std::exchange(other.length_, 0)) {}

MemoryRegion& MemoryRegion::operator=(MemoryRegion&& other) noexcept {
  if (this != &other) {
    Release();
    context_ = std::exchange(other.context_, nullptr);
    memh_ = std::exchange(other.memh_, nullptr);
    address_ = std::exchange(other.address_, nullptr);
    length_ = std::exchange(other.length_, 0);
  }
  return *this;
}

MemoryRegion::~MemoryRegion() {
  Release();
}

void MemoryRegion::Release() {
  if (memh_ != nullptr) ucp_mem_unmap(context_, memh_);
  memh_ = nullptr;
}

Result<std::vector<uint8_t>> MemoryRegion::PackRkey() const {
  if (memh_ == nullptr) {
    return Error(Code::kInvalidArgument, "packing rkey: the memory region is empty");
  }
  void* buffer = nullptr;
  size_t size = 0;
  SWRDMA_RETURN_IF_ERROR(FromUcs(ucp_rkey_pack(context_, memh_, &buffer, &size),
                                 "packing the remote key (ucp_rkey_pack)"));
  const auto* bytes = static_cast<const uint8_t*>(buffer);
  std::vector<uint8_t> out(bytes, bytes + size);
  ucp_rkey_buffer_release(buffer);
  return out;
}

Result<RemoteRegion> MemoryRegion::Describe(uint64_t generation) const {
  SWRDMA_ASSIGN_OR_RETURN(std::vector<uint8_t> rkey, PackRkey());
  return RemoteRegion{.address = reinterpret_cast<uintptr_t>(address_),
                      .length = length_,
                      .rkey = std::move(rkey),
                      .generation = generation};
}

Result<RemoteKey> RemoteKey::Unpack(const UcxEndpoint& endpoint, const RemoteRegion& region) {
  if (endpoint.get() == nullptr) {
    return Error(Code::kUnavailable, "unpacking remote key: the endpoint is closed");
  }
  if (region.rkey.empty()) {
    return Error(Code::kRdmaRemoteAccess, "unpacking remote key: the key is empty");
  }
  ucp_rkey_h rkey = nullptr;
  ucs_status_t status = ucp_ep_rkey_unpack(endpoint.get(), region.rkey.data(), &rkey);
  if (status != UCS_OK) {
    Status s = FromUcs(status, fmt::format("unpacking remote key ({} bytes, generation {})",
                                           region.rkey.size(), region.generation));
    // Anything but memory pressure means the key itself was refused.
    Code code = status == UCS_ERR_NO_MEMORY ? Code::kResourceExhausted : Code::kRdmaRemoteAccess;
    return Error(code, s.message());
  }
  return RemoteKey(rkey, region.address, region.length, region.generation);
}

RemoteKey::RemoteKey(RemoteKey&& other) noexcept
    : rkey_(std::exchange(other.rkey_, nullptr)),
      address_(other.address_),
      length_(other.length_),
      generation_(other.generation_) {}

RemoteKey& RemoteKey::operator=(RemoteKey&& other) noexcept {
  if (this != &other) {
    if (rkey_ != nullptr) ucp_rkey_destroy(rkey_);
    rkey_ = std::exchange(other.rkey_, nullptr);
    address_ = other.address_;
    length_ = other.length_;
    generation_ = other.generation_;
  }
  return *this;
}

RemoteKey::~RemoteKey() {
  if (rkey_ != nullptr) ucp_rkey_destroy(rkey_);
}

Status RemoteKey::CheckRange(uint64_t remote_address, uint64_t bytes) const {
  RemoteRegion bounds{.address = address_, .length = length_, .rkey = {}, .generation = 0};
  if (bounds.Contains(remote_address, bytes)) return Status::Ok();
  return Status(
      Code::kRdmaRemoteAccess,
      fmt::format("remote read [{:#x}, +{}) is outside the registered region [{:#x}, +{}) "
                  "of generation {}",
                  remote_address, bytes, address_, length_, generation_));
}

namespace {
class UcxRegistration final : public Registration {
 public:
  explicit UcxRegistration(MemoryRegion region)
      : Registration(region.get()), region_(std::move(region)) {}
  Result<std::vector<uint8_t>> PackKey() const override { return region_.PackRkey(); }

 private:
  MemoryRegion region_;
};
}  // namespace

Result<std::unique_ptr<Registration>> UcxRegistrar::Register(void* address, size_t length,
                                                             RegionAccess access) const {
  SWRDMA_ASSIGN_OR_RETURN(auto region, MemoryRegion::Map(*context_, address, length, access));
  return std::make_unique<UcxRegistration>(std::move(region));
}

}  // namespace swrdma::rdma
