#include "rdma/verbs/read_batch.h"

#include <algorithm>
#include <array>
#include <thread>

#include <fmt/format.h>

#include "rdma/verbs/registrar.h"
#include "rdma/verbs/verbs_status.h"

namespace swrdma::rdma::verbs {

ReadBatch::ReadBatch(Connection& connection, const CompletionQueue& cq,
                     std::chrono::microseconds spin)
    : connection_(&connection),
      cq_(&cq),
      capacity_(std::max<size_t>(1, connection.send_queue_depth())),
      spin_(spin) {}

ReadBatch::~ReadBatch() {
  if (pending_ == 0) return;
  (void)connection_->Fail();
  Drain(Clock::now() + std::chrono::seconds(5));
}

void ReadBatch::Complete(size_t index, Status status, bool release) {
  Slot& s = slots_[index];
  if (s.done) return;
  s.done = true;
  s.status = std::move(status);
  if (!s.status.ok()) {
    if (release) s.buffer.Release();
    broken_ = true;  // a failed READ leaves the QP in error (or it was failed on purpose)
  }
  completed_.push_back(index);
}

size_t ReadBatch::PostPooled(uint32_t rkey, uint64_t remote_address, size_t length,
                             PooledBuffer buffer) {
  const size_t index = slots_.size();
  slots_.push_back(Slot{});
  auto fail = [&](Status s) {
    Complete(index, std::move(s));
    return index;
  };
  if (!buffer || length > buffer.size() || buffer.registration() == nullptr) {
    return fail(
        Status(Code::kInvalidArgument,
               fmt::format("RDMA READ of {} bytes: no registered buffer that large", length)));
  }
  if (broken_) {
    return fail(Status(Code::kCancelled,
                       "RDMA READ not posted: the connection failed earlier in this batch"));
  }
  if (pending_ >= capacity_) {
    return fail(Status(Code::kResourceExhausted,
                       fmt::format("RDMA READ not posted: {} READs already outstanding (the "
                                   "send queue's depth)",
                                   pending_)));
  }
  const uint32_t lkey = LocalKeyOf(*buffer.registration());
  Status posted =
      connection_->PostRead(buffer.span().first(length), lkey, remote_address, rkey, index);
  if (!posted.ok()) return fail(std::move(posted));
  slots_[index].buffer = std::move(buffer);
  slots_[index].length = length;
  slots_[index].outstanding = 1;
  ++pending_;
  return index;
}

size_t ReadBatch::PostPooledSegments(std::span<const Segment> segments, PooledBuffer buffer) {
  const size_t index = slots_.size();
  slots_.push_back(Slot{});
  auto fail = [&](Status s) {
    Complete(index, std::move(s));
    return index;
  };
  size_t length = 0;
  for (const Segment& seg : segments)
    length += seg.length;
  if (segments.empty() || !buffer || length > buffer.size() || buffer.registration() == nullptr) {
    return fail(Status(Code::kInvalidArgument,
                       fmt::format("RDMA READ of {} bytes in {} pieces: no registered buffer that "
                                   "large",
                                   length, segments.size())));
  }
  if (broken_) {
    return fail(Status(Code::kCancelled,
                       "RDMA READ not posted: the connection failed earlier in this batch"));
  }
  if (segments.size() > capacity_ - std::min(pending_, capacity_)) {
    return fail(Status(Code::kResourceExhausted,
                       fmt::format("RDMA READ of {} pieces not posted: {} READs already "
                                   "outstanding of the send queue's {}",
                                   segments.size(), pending_, capacity_)));
  }
  const uint32_t lkey = LocalKeyOf(*buffer.registration());
  Slot& slot = slots_[index];
  slot.length = length;
  std::span<std::byte> into = buffer.span();
  size_t at = 0;
  Status posted = Status::Ok();
  for (const Segment& seg : segments) {
    posted = connection_->PostRead(into.subspan(at, seg.length), lkey, seg.remote_address, seg.rkey,
                                   index);
    if (!posted.ok()) break;
    at += seg.length;
    ++slot.outstanding;
    ++pending_;
  }
  // The buffer stays with the slot while any of its READs may still write into it.
  slot.buffer = std::move(buffer);
  if (!posted.ok()) {
    broken_ = true;  // fail what was posted: nothing else may follow a half-posted record
    (void)connection_->Fail();
    if (slot.outstanding == 0) return fail(std::move(posted));
    slot.status = std::move(posted);
  }
  return index;
}

PooledBuffer ReadBatch::TakePooled(size_t index) {
  return std::move(slots_[index].buffer);
}

Status ReadBatch::Poll(bool sleep, Clock::time_point until) {
  std::array<ibv_wc, 32> wc{};
  SWRDMA_ASSIGN_OR_RETURN(size_t n, sleep ? cq_->SleepAndPoll(wc, until) : cq_->Poll(wc));
  for (size_t k = 0; k < n; ++k) {
    const size_t index = static_cast<size_t>(wc[k].wr_id);
    if (index >= slots_.size() || slots_[index].done) continue;  // not one of ours
    Slot& slot = slots_[index];
    if (slot.outstanding == 0) continue;  // cannot happen: more completions than READs
    --pending_;
    --slot.outstanding;
    // A record in several READs keeps the first failure; it completes with its last READ (its
    // buffer is written until then).
    Status s = FromWc(wc[k].status, fmt::format("RDMA READ of {} bytes", slot.length));
    if (slot.status.ok() && !s.ok()) slot.status = std::move(s);
    if (slot.outstanding == 0) {
      Status done = std::move(slot.status);
      Complete(index, std::move(done));
    }
  }
  return Status::Ok();
}

void ReadBatch::Drain(Clock::time_point deadline) {
  // Flushed completions arrive at once on a device; if the CQ itself failed there is nothing
  // more to learn and the connection's destruction (QP destroyed) ends any DMA.
  while (pending_ > 0 && Clock::now() < deadline) {
    if (!Poll().ok()) break;
    if (pending_ > 0) std::this_thread::yield();
  }
  for (size_t i = 0; i < slots_.size() && pending_ > 0; ++i) {
    if (slots_[i].done) continue;
    pending_ -= std::min(pending_, slots_[i].outstanding);
    slots_[i].outstanding = 0;
    // Its buffer may still be written by a READ the device never completed: it stays in the
    // slot, out of the pool, until the batch goes (its owner destroys the connection with it).
    Complete(i, Status(Code::kTimeout, "RDMA READ: no completion after the QP was failed"),
             /*release=*/false);
  }
}

Status ReadBatch::WaitUntilPendingAtMost(size_t pending, Clock::time_point deadline) {
  Clock::time_point spin_until = Clock::now() + spin_;
  bool sleep = false;
  for (uint64_t spins = 0; pending_ > pending; ++spins) {
    const size_t before = pending_;
    if (Status s = Poll(sleep, deadline); !s.ok()) {
      (void)connection_->Fail();
      Drain(Clock::now() + std::chrono::seconds(1));
      return s;
    }
    sleep = false;
    if (pending_ < before) {  // progress: spin again before any sleep
      spin_until = Clock::now() + spin_;
      spins = 0;
      continue;
    }
    // Reading the clock on every empty poll would dominate a busy loop; every 64th is enough.
    if ((spins & 63) != 63) continue;
    const Clock::time_point now = Clock::now();
    sleep = cq_->has_events() && now >= spin_until;
    if (now >= deadline) {
      (void)connection_->Fail();
      Drain(Clock::now() + std::chrono::seconds(1));
      for (size_t index : completed_) {
        if (slots_[index].status.code() == Code::kCancelled) {
          slots_[index].status = Status(Code::kTimeout,
                                        "RDMA READ: no completion before the "
                                        "deadline (the QP was failed)");
        }
      }
      return Status(Code::kTimeout, "RDMA READs still outstanding at the deadline");
    }
  }
  return Status::Ok();
}

Status ReadBatch::Reset() {
  if (pending_ != 0) return Status(Code::kInternal, "RDMA READs still in flight");
  if (broken_) return Status(Code::kCancelled, "the connection failed: use a new one");
  slots_.clear();
  completed_.clear();
  return Status::Ok();
}

}  // namespace swrdma::rdma::verbs
