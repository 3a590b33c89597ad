#include "rdma/verbs/registrar.h"

#include <fmt/format.h>

namespace swrdma::rdma::verbs {
namespace {

class VerbsRegistration final : public Registration {
 public:
  explicit VerbsRegistration(MemoryRegion region)
      : Registration(region.get()), region_(std::move(region)) {}

  // 4 bytes, little-endian: what UnpackRkey reads back (MemoryRegion::Describe's format).
  Result<std::vector<uint8_t>> PackKey() const override { return region_.Describe(0).rkey; }

 private:
  MemoryRegion region_;
};

}  // namespace

Result<std::unique_ptr<Registration>> Registrar::Register(void* address, size_t length,
                                                          RegionAccess access) const {
  // A reader's buffers: only its own NIC writes them (the landing of its READs), whatever the
  // pool asks for. Landing buffers (push) are the one case for REMOTE_WRITE.
  Access flags = Access::kLocalWrite;
  if (role_ == RegistrarRole::kLanding) {
    if (access != RegionAccess::kRemoteReadWrite) {
      return Error(Code::kInvalidArgument,
                   "a landing pool is registered for remote writes (RegionAccess::"
                   "kRemoteReadWrite); plain buffers belong to a reader's registrar");
    }
    flags = Access::kRemoteWrite;
  }
  if (role_ == RegistrarRole::kExporter) {
    if (access != RegionAccess::kRemoteRead) {
      return Error(Code::kPermissionDenied,
                   "an export is never remotely writable: the verbs exporter registers "
                   "REMOTE_READ only");
    }
    flags = on_demand_ ? Access::kRemoteReadOnDemand : Access::kRemoteReadOnly;
  }
  SWRDMA_ASSIGN_OR_RETURN(MemoryRegion region, MemoryRegion::Open(*pd_, address, length, flags));
  return std::unique_ptr<Registration>(new VerbsRegistration(std::move(region)));
}

}  // namespace swrdma::rdma::verbs
