// Push over verbs, as the checked-read servers see it (agent/tcp_read_server.h): a client may
// offer a landing buffer with its read request (protocol/read_messages.h PushLanding), and the
// agent then RDMA WRITEs records there instead of sending their bytes over the stream. The
// implementation is the verbs exporter (agent/verbs_exporter.h); this interface keeps the read
// servers free of verbs types.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "agent/exported_volume.h"
#include "protocol/read_messages.h"
#include "protocol/status.h"
#include "rdma/registration.h"

namespace swrdma::agent {

// One record to write: `source` lies inside `registration` (whose local key the write names),
// and lands at `offset` of the request's landing buffer.
struct PushWrite {
  std::span<const uint8_t> source;
  uint32_t local_key = 0;
  uint64_t offset = 0;
  // Keeps the registration alive until the write completed, even if the pin budget drops the
  // volume's registrations meanwhile (ExportedVolume::DropRemote).
  std::shared_ptr<const rdma::Registration> registration;
};

class RecordPusher {
 public:
  virtual ~RecordPusher() = default;
  // How `record` (inside `source`'s mapping) can be written by RDMA: its registration and local
  // key. nullopt when it is not registered with this pusher's device (the pin budget left it
  // out, or it straddles two registrations): it is then sent inline.
  virtual std::optional<PushWrite> Source(const ExportedVolume& source,
                                          std::span<const uint8_t> record) const = 0;
  // Writes every record to `landing` on the connection its nonce names and returns once all
  // of them completed. kNotFound when no connection has that nonce; any failure leaves the
  // landing's contents undefined (the caller then sends every record inline).
  virtual Status Push(const PushLanding& landing, std::span<const PushWrite> writes) = 0;
};

}  // namespace swrdma::agent
