// What a read round needs from a checked-read transport (protocol/read_messages.h): send a batch
// of fids, collect per-fid arrivals into pool buffers, give up on what is outstanding. Two
// implementations: client/checked_reader.h (UCX active messages: shared memory) and
// client/tcp_checked_reader.h (the agent's TCP read port: other hosts).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol/read_messages.h"
#include "protocol/status.h"
#include "rdma/buffer_pool.h"
#include "rdma/ucx/ucx_worker.h"

namespace swrdma::client {

struct CheckedArrival {
  size_t tag = 0;  // what the caller passed with the fid
  ReadReplyHeader header;
  rdma::PooledBuffer record;  // status kOk: the record, header.length bytes
  std::string reason;         // other statuses: the agent's reason
  Status error;               // the reply could not be received (transport failure)
};

class CheckedReads {
 public:
  virtual ~CheckedReads() = default;
  // Sends one request for `entries`; `tags[i]` comes back with entry i's arrival. Splits
  // nothing: at most kMaxReadBatch entries of at most kMaxReadRequestBytes. `ec_pieces` asks
  // for the pieces of EC records not held whole (kReadRequestEcPieces): such arrivals have
  // header.pieces set and carry an EcPieces block; the caller checks it asked for them.
  virtual Status Send(std::span<const ReadRequestEntry> entries, std::span<const size_t> tags,
                      bool ec_pieces) = 0;
  // Waits until at least one arrival is ready or `deadline` passes; moves the ready ones to
  // `out`. kTimeout when nothing came (outstanding() still counts the missing).
  virtual Status Poll(std::vector<CheckedArrival>& out, rdma::Deadline deadline) = 0;
  // Replies asked for and not yet ready (including those still being received).
  virtual size_t outstanding() const = 0;
  // Forgets every outstanding reply (after a timeout): late replies are dropped on arrival.
  virtual void Forget() = 0;
};

}  // namespace swrdma::client
