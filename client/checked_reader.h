// The client half of checked reads (protocol/read_messages.h) over UCX active messages: sends
// batches of fids to the agent and collects each record into a registered pool buffer, where the
// read path verifies it in place as after a one-sided read.
//
// A reply arrives either eager (UCX hands us its bytes: copied once into a pool buffer) or by
// rendezvous (we receive it straight into a pool buffer with ucp_am_recv_data_nbx). Replies are
// matched to what was asked by (request id, index); anything else (a reply to a request we gave
// up on, a forged header) is dropped and counted.
//
// Thread: like the worker, one thread. The worker, endpoint and pool must outlive the reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "client/checked_reads.h"
#include "protocol/read_messages.h"
#include "protocol/status.h"
#include "rdma/buffer_pool.h"
#include "rdma/ucx/ucx_endpoint.h"
#include "rdma/ucx/ucx_worker.h"

namespace swrdma::client {

class CheckedReader final : public CheckedReads {
 public:
  // Registers the reply handler on `worker` (replacing any other for kReadReplyAmId).
  static Result<std::unique_ptr<CheckedReader>> Create(rdma::UcxWorker& worker,
                                                       rdma::UcxEndpoint& endpoint,
                                                       rdma::BufferPool& pool);
  ~CheckedReader() override;
  CheckedReader(const CheckedReader&) = delete;
  CheckedReader& operator=(const CheckedReader&) = delete;

  // Sends one request for `entries`; `tags[i]` comes back with entry i's arrival. Splits
  // nothing: at most kMaxReadBatch entries of at most kMaxReadRequestBytes.
  Status Send(std::span<const ReadRequestEntry> entries, std::span<const size_t> tags,
              bool ec_pieces) override;
  // Progresses the worker until at least one arrival is ready or `deadline` passes; moves the
  // ready ones to `out`. kTimeout when nothing came (outstanding() still counts the missing).
  Status Poll(std::vector<CheckedArrival>& out, rdma::Deadline deadline) override;
  // Replies asked for and not yet ready (including those still being received).
  size_t outstanding() const override { return outstanding_ + receiving_.size(); }
  // Forgets every outstanding reply (after a timeout): late replies are dropped on arrival.
  void Forget() override;

  uint64_t dropped() const { return dropped_; }  // replies that matched nothing we asked

  struct Pending;  // one rendezvous receive in flight (checked_reader.cc)
  // Called by that receive's completion callback.
  void Complete(Pending* pending, Status status);

 private:
  CheckedReader(rdma::UcxWorker& worker, rdma::UcxEndpoint& endpoint, rdma::BufferPool& pool)
      : worker_(worker), endpoint_(endpoint), pool_(pool) {}
  static ucs_status_t OnReply(void* arg, const void* header, size_t header_length, void* data,
                              size_t length, const ucp_am_recv_param_t* param);
  ucs_status_t Arrive(const ReadReplyHeader& h, void* data, size_t length,
                      const ucp_am_recv_param_t* param);

  rdma::UcxWorker& worker_;
  rdma::UcxEndpoint& endpoint_;
  rdma::BufferPool& pool_;
  uint64_t next_request_id_ = 1;
  // request id -> tags of its entries; an entry's tag is erased (set to SIZE_MAX) on arrival.
  std::unordered_map<uint64_t, std::vector<size_t>> asked_;
  std::vector<CheckedArrival> ready_;
  std::vector<Pending*> receiving_;  // rendezvous receives in flight
  size_t outstanding_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace swrdma::client
