#include "rdma/ucx/get.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "rdma/ucx/ucx_status.h"

namespace swrdma::rdma {
namespace {

// After ucp_request_cancel, how long to progress before giving up on it and aborting.
constexpr auto kCancelGrace = std::chrono::milliseconds(10);
// After aborting an endpoint with peer error handling, how long to wait for the callbacks UCX
// owes us (a force close completes them at once; this is slack, not an expected delay).
constexpr auto kAbortGrace = std::chrono::seconds(2);
// Without peer error handling nothing will complete them; progress briefly for late replies.
constexpr auto kAbortGraceNoErrorHandling = std::chrono::milliseconds(20);

std::string Describe(uint64_t remote_address, size_t length) {
  return fmt::format("ucp_get_nbx of {} bytes at {:#x}", length, remote_address);
}

}  // namespace

GetBatch::GetBatch(UcxEndpoint& endpoint) : endpoint_(endpoint.core()) {}

GetBatch::~GetBatch() {
  if (pending_ > 0) Drain(Status(Code::kCancelled, "get batch destroyed with gets in flight"));
}

void GetBatch::Complete(Slot& slot, Status status) {
  slot.done = true;
  slot.request = nullptr;
  slot.status = std::move(status);
  --pending_;
  completed_.push_back(slot.index);
}

std::unique_ptr<GetBatch::Slot> GetBatch::NewSlot() {
  if (spare_.empty()) return std::make_unique<Slot>();
  std::unique_ptr<Slot> slot = std::move(spare_.back());
  spare_.pop_back();
  return slot;
}

const Status& GetBatch::status(size_t index) const {
  // Not stored in the slot while in flight: posting a get allocates no message.
  static const Status kInFlight(Code::kInternal, "get still in flight");
  const Slot& slot = *slots_[index];
  return slot.done ? slot.status : kInFlight;
}

void GetBatch::OnComplete(void* request, ucs_status_t status, void* user_data) {
  auto* slot = static_cast<Slot*>(user_data);
  // The callback has run: now, and only now, the request may go back to UCX.
  ucp_request_free(request);
  if (slot->batch == nullptr) {  // abandoned by a batch that could not wait any longer
    slot->worker->DestroyAbandoned(slot);
    return;
  }
  // The description is formatted only for a failure: a string per successful get was ~1.5 % of
  // a 4 KiB read loop (perf).
  slot->batch->Complete(*slot, status == UCS_OK
                                   ? Status::Ok()
                                   : FromUcs(status, Describe(slot->remote_address, slot->length)));
}

size_t GetBatch::Post(const RemoteKey& rkey, uint64_t remote_address, size_t length) {
  auto slot = NewSlot();
  slot->remote_address = remote_address;
  slot->length = length;
  // Allocate only what is allowed to be read: an out-of-range length may be absurd.
  bool in_range = rkey.CheckRange(remote_address, length).ok();
  if (in_range) slot->owned.resize(length);
  std::byte* destination = slot->owned.data();
  return PostSlot(std::move(slot), rkey, destination, nullptr);
}

size_t GetBatch::PostInto(const RemoteKey& rkey, uint64_t remote_address,
                          std::span<std::byte> destination, ucp_mem_h memh) {
  auto slot = NewSlot();
  slot->remote_address = remote_address;
  slot->length = destination.size();
  return PostSlot(std::move(slot), rkey, destination.data(), memh);
}

size_t GetBatch::PostPooled(const RemoteKey& rkey, uint64_t remote_address, size_t length,
                            PooledBuffer buffer) {
  auto slot = NewSlot();
  slot->remote_address = remote_address;
  slot->length = length;
  std::byte* destination = buffer.data();
  ucp_mem_h memh = UcxMemh(buffer.registration());
  const size_t capacity = buffer.size();
  slot->pooled = std::move(buffer);
  if (capacity < length) {  // never overrun a buffer: fail the get before posting it
    slot->batch = this;
    slot->done = false;
    slots_.push_back(std::move(slot));
    const size_t index = slots_.size() - 1;
    slots_[index]->index = index;
    ++pending_;
    Complete(*slots_[index], Status(Code::kInvalidArgument,
                                    fmt::format("{}: the destination buffer holds only {} bytes",
                                                Describe(remote_address, length), capacity)));
    return index;
  }
  return PostSlot(std::move(slot), rkey, destination, memh);
}

PooledBuffer GetBatch::TakePooled(size_t index) {
  Slot& slot = *slots_[index];
  if (!slot.done) return {};
  return std::move(slot.pooled);
}

size_t GetBatch::PostSlot(std::unique_ptr<Slot> owned_slot, const RemoteKey& rkey,
                          std::byte* destination, ucp_mem_h memh) {
  Slot& slot = *owned_slot;
  slot.batch = this;
  slot.done = false;
  slot.status = Status::Ok();
  slots_.push_back(std::move(owned_slot));
  const size_t index = slots_.size() - 1;
  slot.index = index;
  ++pending_;

  if (Status range = rkey.CheckRange(slot.remote_address, slot.length); !range.ok()) {
    Complete(slot, std::move(range));
    return index;
  }
  if (endpoint_ == nullptr || endpoint_->handle == nullptr || !endpoint_->failure.ok()) {
    Status why = endpoint_ != nullptr && !endpoint_->failure.ok()
                     ? endpoint_->failure
                     : Status(Code::kUnavailable, "the UCX endpoint is closed");
    Complete(slot, why.WithContext(Describe(slot.remote_address, slot.length)));
    return index;
  }
  if (slot.length == 0) {
    Complete(slot, Status::Ok());
    return index;
  }
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = &GetBatch::OnComplete;
  param.user_data = &slot;
  if (memh != nullptr) {
    param.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMH;
    param.memh = memh;
  }
  ucs_status_ptr_t request = ucp_get_nbx(endpoint_->handle, destination, slot.length,
                                         slot.remote_address, rkey.get(), &param);
  if (request == nullptr) {
    Complete(slot, Status::Ok());  // completed in place; no callback follows
  } else if (UCS_PTR_IS_ERR(request)) {
    Complete(slot, FromUcs(UCS_PTR_STATUS(request), Describe(slot.remote_address, slot.length)));
  } else {
    slot.request = request;
  }
  return index;
}

Status GetBatch::WaitUntilPendingAtMost(size_t pending, Deadline deadline) {
  unsigned rounds = 0;
  while (pending_ > pending) {
    endpoint_->worker->Progress();
    if (pending_ <= pending) break;
    // Reading the clock costs as much as an idle progress round (65-170 ns in a VM; perf showed
    // 2/3 of a waiting client's cycles in clock_gettime): look at the deadline every 32 rounds.
    if ((++rounds & 31) != 0) continue;
    if (Clock::now() >= deadline) {
      Status reason(Code::kTimeout,
                    fmt::format("{} of {} gets did not complete before the deadline; the endpoint "
                                "was aborted (is the remote worker progressing?)",
                                pending_, slots_.size()));
      Drain(reason);
      return reason;
    }
  }
  return Status::Ok();
}

void GetBatch::Drain(const Status& reason) {
  std::vector<Slot*> overdue;
  for (auto& slot : slots_) {
    if (!slot->done) overdue.push_back(slot.get());
  }
  detail::WorkerCore* worker = endpoint_->worker;
  for (Slot* slot : overdue) {
    if (slot->request != nullptr) ucp_request_cancel(worker->handle, slot->request);
  }
  Deadline grace = DeadlineIn(kCancelGrace);
  while (pending_ > 0 && Clock::now() < grace)
    worker->Progress();
  const bool peer_mode = endpoint_->peer_error_handling;
  if (pending_ > 0) detail::AbortEndpoint(*endpoint_, reason);
  grace = DeadlineIn(peer_mode ? Clock::duration(kAbortGrace) : kAbortGraceNoErrorHandling);
  while (pending_ > 0 && Clock::now() < grace)
    worker->Progress();

  for (Slot* slot : overdue) {
    if (slot->done && slot->status.ok()) continue;  // made it during the grace period
    if (slot->done) {
      slot->status = reason.WithContext(Describe(slot->remote_address, slot->length));
      continue;
    }
    // UCX still owes this callback and nothing will make it come sooner: hand the slot (with
    // any buffer it owns) to the callback, which deletes it, rather than ever freeing a request
    // UCX has not completed.
    size_t index = 0;
    while (slots_[index].get() != slot)
      ++index;
    Slot* abandoned = slots_[index].release();
    abandoned->batch = nullptr;
    abandoned->worker = worker;
    worker->abandoned_objects.push_back(
        {abandoned, [](void* object) { delete static_cast<Slot*>(object); }});
    auto replacement = std::make_unique<Slot>();
    replacement->done = true;
    replacement->index = index;
    replacement->remote_address = abandoned->remote_address;
    replacement->length = abandoned->length;
    std::string left = abandoned->owned.empty() && abandoned->length > 0
                           ? "; UCX may still write the destination until the worker is destroyed"
                           : "";
    replacement->status =
        reason.WithContext(Describe(abandoned->remote_address, abandoned->length) +
                           " (request left to UCX" + left + ")");
    slots_[index] = std::move(replacement);
    --pending_;
    completed_.push_back(index);
  }
}

Status GetBatch::FirstError() const {
  for (const auto& slot : slots_) {
    if (!slot->status.ok()) return slot->status;
  }
  return Status::Ok();
}

std::span<const std::byte> GetBatch::data(size_t index) const {
  const Slot& slot = *slots_[index];
  if (!slot.done || !slot.status.ok()) return {};
  return slot.owned;
}

std::vector<std::byte> GetBatch::TakeData(size_t index) {
  Slot& slot = *slots_[index];
  if (!slot.done || !slot.status.ok()) return {};
  return std::move(slot.owned);
}

Status GetBatch::Reset() {
  if (pending_ > 0) {
    return Status(Code::kInternal, "resetting a get batch with gets still in flight");
  }
  for (auto& slot : slots_) {
    slot->owned.clear();  // keeps its capacity for the next Post
    slot->pooled.Release();
    spare_.push_back(std::move(slot));
  }
  slots_.clear();
  completed_.clear();
  return Status::Ok();
}

Result<std::vector<std::byte>> Read(UcxEndpoint& endpoint, const RemoteKey& rkey,
                                    uint64_t remote_address, size_t length, Deadline deadline) {
  GetBatch batch(endpoint);
  batch.Post(rkey, remote_address, length);
  SWRDMA_RETURN_IF_ERROR(batch.Wait(deadline));
  SWRDMA_RETURN_IF_ERROR(batch.status(0));
  return batch.TakeData(0);
}

Status Get(UcxEndpoint& endpoint, const RemoteKey& rkey, uint64_t remote_address,
           std::span<std::byte> destination, Deadline deadline) {
  GetBatch batch(endpoint);
  batch.PostInto(rkey, remote_address, destination);
  SWRDMA_RETURN_IF_ERROR(batch.Wait(deadline));
  return batch.status(0);
}

}  // namespace swrdma::rdma
