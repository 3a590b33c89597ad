// Client::Impl::VolumeKey, shared by client.cc (key exchange) and read_round.cc (gets): the
// unpacked rkey of one export (volume, generation) and the needle version its records use.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
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
  // An erasure-coded volume over verbs: each registered shard file, by shard id (length 0: not
  // registered, its pieces are read checked).
  std::vector<VerbsExtent> ec_shards;

  // The remote address of an EC piece: inside its shard's registration, or nullopt (then it is
  // refused here: the answer is stale or forged, never read).
  std::optional<std::pair<uint64_t, uint32_t>> EcPieceAt(uint32_t shard, uint64_t offset,
                                                         uint64_t length) const {
    if (shard >= ec_shards.size()) return std::nullopt;
    const VerbsExtent& e = ec_shards[shard];
    if (e.length == 0 || offset > e.length || length > e.length - offset) return std::nullopt;
    return std::pair<uint64_t, uint32_t>{e.address + offset, e.rkey};
  }

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
