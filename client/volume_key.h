// Client::Impl::VolumeKey, shared by client.cc (key exchange) and read_round.cc (gets): the
// unpacked rkey of one export (volume, generation) and the needle version its records use.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "client/client_impl.h"
#include "rdma/ucx/memory_region.h"

namespace swrdma::client {

struct Client::Impl::VolumeKey {
  // One registered extent of the volume over verbs: [address, address + length) under rkey.
  struct VerbsExtent {
    uint64_t address = 0;
    uint64_t length = 0;
    uint32_t rkey = 0;
  };
  uint64_t generation = 0;
  uint8_t version = 3;
  std::optional<rdma::RemoteKey> rkey;  // over UCX
  std::vector<VerbsExtent> verbs;       // over verbs, in address order

  // The extent holding all of [address, address + length), or null (then the read is refused
  // here: a lookup answer outside every key is stale or forged, never read).
  const VerbsExtent* VerbsExtentFor(uint64_t address, uint64_t length) const {
    for (const VerbsExtent& e : verbs) {
      if (address >= e.address && length <= e.length && address - e.address <= e.length - length) {
        return &e;
      }
    }
    return nullptr;
  }
};

}  // namespace swrdma::client
