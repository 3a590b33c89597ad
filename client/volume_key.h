// Client::Impl::VolumeKey, shared by client.cc (key exchange) and read_round.cc (gets): the
// unpacked rkey of one export (volume, generation) and the needle version its records use.
#pragma once

#include <cstdint>

#include "client/client_impl.h"
#include "rdma/ucx/memory_region.h"

namespace swrdma::client {

struct Client::Impl::VolumeKey {
  uint64_t generation = 0;
  uint8_t version = 3;
  rdma::RemoteKey rkey;
};

}  // namespace swrdma::client
