#include "client/checked_reader.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "rdma/ucx/memory_region.h"
#include "rdma/ucx/ucx_status.h"

namespace swrdma::client {

inline constexpr size_t kArrived = std::numeric_limits<size_t>::max();

struct CheckedReader::Pending {
  CheckedReader* owner;  // null once the reader is gone: the callback then frees this
  rdma::detail::WorkerCore* core;
  CheckedArrival arrival;
};

namespace {

void OnRequestSent(void* request, ucs_status_t /*status*/, void* user_data) {
  // A failed send shows up as replies that never come (the endpoint's error callback and the
  // deadline report it); the bytes can go now.
  delete static_cast<std::vector<uint8_t>*>(user_data);
  ucp_request_free(request);
}

void OnRecvData(void* request, ucs_status_t status, size_t /*length*/, void* user_data) {
  auto* pending = static_cast<CheckedReader::Pending*>(user_data);
  ucp_request_free(request);
  if (pending->owner == nullptr) {
    pending->core->DestroyAbandoned(pending);
    return;
  }
  pending->owner->Complete(pending, status == UCS_OK
                                        ? Status::Ok()
                                        : rdma::FromUcs(status, "receiving a checked read reply"));
}

}  // namespace

Result<std::unique_ptr<CheckedReader>> CheckedReader::Create(rdma::UcxWorker& worker,
                                                             rdma::UcxEndpoint& endpoint,
                                                             rdma::BufferPool& pool) {
  std::unique_ptr<CheckedReader> reader(new CheckedReader(worker, endpoint, pool));
  ucp_am_handler_param_t p{};
  p.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                 UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
  p.id = kReadReplyAmId;
  p.flags = UCP_AM_FLAG_WHOLE_MSG;
  p.cb = &CheckedReader::OnReply;
  p.arg = reader.get();
  SWRDMA_RETURN_IF_ERROR(rdma::FromUcs(ucp_worker_set_am_recv_handler(worker.get(), &p),
                                       "registering the checked-read reply handler"));
  return reader;
}

CheckedReader::~CheckedReader() {
  ucp_am_handler_param_t p{};
  p.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                 UCP_AM_HANDLER_PARAM_FIELD_ARG;
  p.id = kReadReplyAmId;
  p.cb = nullptr;
  p.arg = nullptr;
  (void)ucp_worker_set_am_recv_handler(worker_.get(), &p);
  // Receives UCX still owes a callback: the callback frees them (or the worker, when destroyed).
  for (Pending* pending : receiving_) {
    pending->owner = nullptr;
    pending->core->abandoned_objects.push_back(
        {pending, [](void* object) { delete static_cast<Pending*>(object); }});
  }
}

Status CheckedReader::Send(std::span<const ReadRequestEntry> entries, std::span<const size_t> tags,
                           bool ec_pieces) {
  if (entries.size() != tags.size()) {
    return Status(Code::kInvalidArgument, "checked read: one tag per entry");
  }
  SWRDMA_RETURN_IF_ERROR(endpoint_.status());
  ReadRequest request;
  request.request_id = next_request_id_++;
  request.entries.assign(entries.begin(), entries.end());
  request.ec_pieces = ec_pieces;
  SWRDMA_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, EncodeReadRequest(request));
  auto* owned = new std::vector<uint8_t>(std::move(bytes));
  ucp_request_param_t param{};
  param.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  param.cb.send = &OnRequestSent;
  param.user_data = owned;
  // REPLY: the agent answers on the endpoint this request came from (it needs no address of
  // ours). EAGER: the agent refuses rendezvous requests (it would have to fetch data a peer
  // chose).
  param.flags = UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_EAGER;
  ucs_status_ptr_t sent = ucp_am_send_nbx(endpoint_.get(), kReadRequestAmId, nullptr, 0,
                                          owned->data(), owned->size(), &param);
  if (sent == nullptr) {
    delete owned;
  } else if (UCS_PTR_IS_ERR(sent)) {
    delete owned;
    return rdma::FromUcs(UCS_PTR_STATUS(sent), "sending a checked read request");
  }
  asked_.emplace(request.request_id, std::vector<size_t>(tags.begin(), tags.end()));
  outstanding_ += tags.size();
  return Status::Ok();
}

ucs_status_t CheckedReader::OnReply(void* arg, const void* header, size_t header_length, void* data,
                                    size_t length, const ucp_am_recv_param_t* param) {
  auto* self = static_cast<CheckedReader*>(arg);
  auto h = DecodeReadReplyHeader({static_cast<const uint8_t*>(header), header_length});
  if (!h) {
    ++self->dropped_;
    return UCS_OK;
  }
  return self->Arrive(*h, data, length, param);
}

ucs_status_t CheckedReader::Arrive(const ReadReplyHeader& h, void* data, size_t length,
                                   const ucp_am_recv_param_t* param) {
  auto it = asked_.find(h.request_id);
  if (it == asked_.end() || h.index >= it->second.size() || it->second[h.index] == kArrived ||
      h.length != length) {
    ++dropped_;  // not ours, already answered, or its header lies about its data
    return UCS_OK;
  }
  CheckedArrival arrival;
  arrival.tag = std::exchange(it->second[h.index], kArrived);
  arrival.header = h;
  if (--outstanding_,
      std::all_of(it->second.begin(), it->second.end(), [](size_t t) { return t == kArrived; })) {
    asked_.erase(it);
  }
  const bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
  if (h.status != ReadStatus::kOk) {
    if (!rndv && length <= 4096) {
      arrival.reason.assign(static_cast<const char*>(data), length);
    } else {
      arrival.reason = "(reason not received)";  // a refusal has no business being large
    }
    ready_.push_back(std::move(arrival));
    return UCS_OK;
  }
  auto buffer = pool_.Acquire(std::max<size_t>(length, 1));
  if (!buffer) {
    arrival.error = buffer.error().WithContext("a buffer for a checked read reply");
    ready_.push_back(std::move(arrival));
    return UCS_OK;
  }
  arrival.record = std::move(*buffer);
  if (!rndv) {
    std::memcpy(arrival.record.data(), data, length);
    ready_.push_back(std::move(arrival));
    return UCS_OK;
  }
  auto* pending = new Pending{this, worker_.core(), std::move(arrival)};
  ucp_request_param_t param_recv{};
  param_recv.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_MEMH;
  param_recv.cb.recv_am = &OnRecvData;
  param_recv.user_data = pending;
  param_recv.memh = rdma::UcxMemh(pending->arrival.record.registration());
  if (param_recv.memh == nullptr) param_recv.op_attr_mask &= ~UCP_OP_ATTR_FIELD_MEMH;
  ucs_status_ptr_t r = ucp_am_recv_data_nbx(worker_.get(), data, pending->arrival.record.data(),
                                            length, &param_recv);
  if (r == nullptr) {
    Complete(pending, Status::Ok());
  } else if (UCS_PTR_IS_ERR(r)) {
    Complete(pending, rdma::FromUcs(UCS_PTR_STATUS(r), "receiving a checked read reply"));
  } else {
    receiving_.push_back(pending);
  }
  return UCS_INPROGRESS;
}

void CheckedReader::Complete(Pending* pending, Status status) {
  std::erase(receiving_, pending);
  pending->arrival.error = std::move(status);
  ready_.push_back(std::move(pending->arrival));
  delete pending;
}

Status CheckedReader::Poll(std::vector<CheckedArrival>& out, rdma::Deadline deadline) {
  unsigned rounds = 0;
  while (ready_.empty()) {
    if (!endpoint_.status().ok()) {
      return endpoint_.status().WithContext("waiting for checked read replies");
    }
    worker_.Progress();
    // The clock is read every 32 rounds: a read per round cost most of a waiting client's time.
    if ((++rounds & 31) == 0 && rdma::Clock::now() >= deadline) {
      if (!ready_.empty()) break;
      return Status(Code::kTimeout,
                    fmt::format("{} checked read replies did not arrive in time", outstanding_));
    }
  }
  for (auto& a : ready_)
    out.push_back(std::move(a));
  ready_.clear();
  return Status::Ok();
}

void CheckedReader::Forget() {
  asked_.clear();
  outstanding_ = 0;
}

}  // namespace swrdma::client
