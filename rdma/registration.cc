#include "rdma/registration.h"

namespace swrdma::rdma {

bool RemoteRegion::Contains(uint64_t remote_address, uint64_t bytes) const {
  return remote_address >= address && bytes <= length && remote_address - address <= length - bytes;
}

}  // namespace swrdma::rdma
