// Push over verbs, as the checked-read servers see it (agent/tcp_read_server.h): a client may
// offer a landing buffer with its read request (protocol/read_messages.h PushLanding), and the
// agent then RDMA WRITEs records there instead of sending their bytes over the stream. The
// implementation is the verbs exporter (agent/verbs_exporter.h); this interface keeps the read
// servers free of verbs types.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

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
  // Called once when a push ended: ok when every write completed; otherwise the landing's
  // contents are undefined (the caller then sends every record inline).
  using PushDone = std::function<void(Status)>;
  // Starts writing every record to `landing` on the connection its nonce names and returns at
  // once: a client that stopped acknowledging (gone, or hostile) must not hold up the thread
  // that serves other clients. `done` is called once, on another thread or before Push returns
  // (kNotFound when no connection has that nonce). The writes' sources (and so the records
  // they lie in) must stay valid until then.
  virtual void Push(const PushLanding& landing, std::vector<PushWrite> writes, PushDone done) = 0;
  // For the read server's Stop: from now on every Push ends at once (kCancelled), and those in
  // flight are ended (their `done` called) before this returns, so that no `done` outlives the
  // server. Bounded by `wait`.
  virtual void StopPushes(std::chrono::milliseconds wait) = 0;
};

}  // namespace swrdma::agent
