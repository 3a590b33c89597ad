#include "rdma/verbs/memory_region.h"

#include <cerrno>
#include <string>
#include <utility>

#include "rdma/verbs/verbs_status.h"

namespace swrdma::rdma::verbs {

int AccessFlags(Access access) {
  switch (access) {
    case Access::kRemoteReadOnly:
      return IBV_ACCESS_REMOTE_READ;
    case Access::kRemoteReadOnDemand:
      return IBV_ACCESS_REMOTE_READ | IBV_ACCESS_ON_DEMAND;
    case Access::kLocalWrite:
      return IBV_ACCESS_LOCAL_WRITE;
    case Access::kRemoteWrite:
      return IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
  }
  return 0;
}

std::string_view AccessName(Access access) {
  switch (access) {
    case Access::kRemoteReadOnly:
      return "REMOTE_READ";
    case Access::kRemoteReadOnDemand:
      return "REMOTE_READ|ON_DEMAND";
    case Access::kLocalWrite:
      return "LOCAL_WRITE";
    case Access::kRemoteWrite:
      return "LOCAL_WRITE|REMOTE_WRITE";
  }
  return "?";
}

Result<MemoryRegion> MemoryRegion::Open(const ProtectionDomain& pd, void* address, size_t length,
                                        Access access) {
  if (address == nullptr || length == 0) {
    return Error(Code::kInvalidArgument, "ibv_reg_mr: empty range");
  }
  errno = 0;
  ibv_mr* mr = ibv_reg_mr(pd.get(), address, length, AccessFlags(access));
  if (mr == nullptr) {
    int error = errno != 0 ? errno : ENOMEM;
    Status status = FromErrno(error, "ibv_reg_mr of " + std::to_string(length) + " bytes with " +
                                         std::string(AccessName(access)));
    if (error == ENOMEM) {
      return Error(status.WithContext("locked-memory limit (ulimit -l) or device MR limit"));
    }
    return Error(std::move(status));
  }
  return MemoryRegion(mr, access);
}

MemoryRegion::MemoryRegion(MemoryRegion&& other) noexcept
    : mr_(std::exchange(other.mr_, nullptr)), access_(other.access_) {}

MemoryRegion& MemoryRegion::operator=(MemoryRegion&& other) noexcept {
  if (this != &other) {
    if (mr_ != nullptr) ibv_dereg_mr(mr_);
    mr_ = std::exchange(other.mr_, nullptr);
    access_ = other.access_;
  }
  return *this;
}

MemoryRegion::~MemoryRegion() {
  if (mr_ != nullptr) ibv_dereg_mr(mr_);
}

RemoteRegion MemoryRegion::Describe(uint64_t generation) const {
  RemoteRegion region;
  region.address = reinterpret_cast<uintptr_t>(address());
  region.length = length();
  uint32_t key = rkey();
  region.rkey = {static_cast<uint8_t>(key), static_cast<uint8_t>(key >> 8),
                 static_cast<uint8_t>(key >> 16), static_cast<uint8_t>(key >> 24)};
  region.generation = generation;
  return region;
}

Result<uint32_t> UnpackRkey(const RemoteRegion& region) {
  if (region.rkey.size() != 4) {
    return Error(Code::kInvalidArgument,
                 "verbs rkey must be 4 bytes, got " + std::to_string(region.rkey.size()));
  }
  return static_cast<uint32_t>(region.rkey[0]) | static_cast<uint32_t>(region.rkey[1]) << 8 |
         static_cast<uint32_t>(region.rkey[2]) << 16 | static_cast<uint32_t>(region.rkey[3]) << 24;
}

}  // namespace swrdma::rdma::verbs
