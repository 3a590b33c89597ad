// Transport-neutral memory registration: what the buffer pool and the exporters need from a
// transport, without naming its types.
//
// A Registration owns one registration of caller-owned memory with one transport (a UCX memory
// handle, a verbs memory region). `native()` is the transport's own handle, interpreted only by
// that transport's code (rdma/ucx/, rdma/verbs/); `PackKey()` gives the bytes a peer of that
// transport needs to address the memory (a packed UCX rkey, a verbs rkey). RemoteRegion is how
// such memory is described on the wire.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "protocol/status.h"

namespace swrdma::rdma {

// A registered range as described to a remote peer.
struct RemoteRegion {
  uint64_t address = 0;       // remote virtual address of the first byte
  uint64_t length = 0;        // bytes addressable from `address`
  std::vector<uint8_t> rkey;  // the transport's packed key
  uint64_t generation = 0;    // which registration this is; owners bump it on every re-register

  // True when [remote_address, remote_address + bytes) lies inside the region.
  bool Contains(uint64_t remote_address, uint64_t bytes) const;
};

enum class RegionAccess {
  kRemoteRead,       // peers may only read (the export case)
  kRemoteReadWrite,  // peers may read and write (a client's landing buffer in push mode)
};

class Registration {
 public:
  virtual ~Registration() = default;
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  // The transport's handle (ucp_mem_h, ibv_mr*); only its own transport casts it back.
  void* native() const { return native_; }
  // The key a peer of this transport needs to read (or write) the memory.
  virtual Result<std::vector<uint8_t>> PackKey() const = 0;

 protected:
  explicit Registration(void* native) : native_(native) {}

 private:
  void* native_;
};

// Registers memory with one transport. Implementations: rdma/ucx/ucx_registrar.h (and verbs).
class Registrar {
 public:
  virtual ~Registrar() = default;
  // Registers [address, address + length), memory the caller owns and keeps mapped for the
  // registration's lifetime.
  virtual Result<std::unique_ptr<Registration>> Register(void* address, size_t length,
                                                         RegionAccess access) const = 0;
  // Whether a registration locks the pages it covers in RAM (and so counts against a pin
  // budget, rdma/pin_budget.h). False where the device pages on demand (verbs ODP).
  virtual bool PinsMemory() const { return true; }
};

}  // namespace swrdma::rdma
