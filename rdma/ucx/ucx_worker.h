// UcxWorker: owner of a ucp_worker_h, the progress engine through which all communication on it
// happens. Its packed address is what a peer needs to connect (exchanged out of band, e.g. over
// HTTP).
//
// A worker belongs to one thread. Everything done with it, and with the endpoints, remote keys
// and gets made from it, happens on that thread (UCX's SINGLE thread mode, the default here,
// does no locking at all). kMulti makes UCX lock internally; prefer one worker per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ucp/api/ucp.h>

#include "protocol/status.h"
#include "rdma/ucx/ucx_context.h"

namespace swrdma::rdma {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

inline Deadline DeadlineIn(Clock::duration timeout) {
  return Clock::now() + timeout;
}

enum class ThreadMode { kSingle, kSerialized, kMulti };

struct UcxWorkerOptions {
  ThreadMode thread_mode = ThreadMode::kSingle;
};

namespace detail {
// What endpoints and gets need from their worker, kept at a stable address so that moving the
// UcxWorker does not invalidate them.
struct WorkerCore {
  ucp_worker_h handle = nullptr;
  ucp_context_h context = nullptr;  // the worker's context, kept alive with it (KeepAlive)
  // Close requests whose endpoint owner gave up waiting (deadline passed). They are released
  // only once UCX reports them complete: never before (see UcxEndpoint::Close).
  std::vector<void*> abandoned_requests;
  // Objects a UCX callback still points at after their owner gave up waiting (GetBatch slots of
  // gets that could not be completed). The callback deletes its object and drops it from this
  // list; whatever is left when the worker is destroyed (no callback can come any more) is
  // deleted then.
  struct AbandonedObject {
    void* object;
    void (*destroy)(void*);
  };
  std::vector<AbandonedObject> abandoned_objects;

  unsigned Progress();
  void ReapAbandoned();
  // Removes `object` from abandoned_objects (its callback came) and destroys it.
  void DestroyAbandoned(void* object);
};
}  // namespace detail

class UcxWorker {
 public:
  // The context must outlive the worker.
  static Result<UcxWorker> Create(const UcxContext& context, const UcxWorkerOptions& options = {});

  UcxWorker(UcxWorker&& other) noexcept = default;
  UcxWorker& operator=(UcxWorker&& other) noexcept;
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;
  // Gives abandoned close requests a short bounded time to finish, then destroys the worker.
  // Requests still in flight after that (a peer that stopped answering a flush) would make
  // ucp_worker_destroy abort in UCX 1.13, so then the worker is kept alive instead (KeepAlive).
  ~UcxWorker();

  // Never destroys the worker nor its context (rdma/ucx/keep_alive.h): for a process that ends
  // while UCX still holds requests it cannot complete. The worker is not progressed again, so no
  // UCX callback runs after this. Leaves this object empty. Only from the worker's thread.
  void KeepAlive();

  ucp_worker_h get() const { return core_ ? core_->handle : nullptr; }
  detail::WorkerCore* core() const { return core_.get(); }

  // The packed worker address (ucp_worker_get_address), copied once at creation. A peer passes
  // these bytes to UcxEndpoint::Connect.
  const std::vector<uint8_t>& address() const { return address_; }

  // One round of ucp_worker_progress; returns how many events it handled (0: nothing to do).
  unsigned Progress() { return core_->Progress(); }

  // The worker's event fd (ucp_worker_get_efd), for poll/epoll. kUnsupported when the context
  // was created without `wakeup`.
  Result<int> efd();

  // ucp_worker_arm: true when it is safe to block on efd() now; false when events are already
  // pending and the caller must Progress() again before trying to arm. The pattern:
  //   while (running) { while (w.Progress()) {}  auto armed = w.Arm();  if (*armed) poll(efd); }
  Result<bool> Arm();

  // One step of the blocking pattern above: progresses, arms, and if armed waits on efd() for at
  // most `timeout`. Returns after any event, the timeout, or Signal() from another thread.
  Status WaitForEvents(std::chrono::milliseconds timeout);

  // ucp_worker_signal: wakes a thread blocked on efd(). The one call that may come from another
  // thread.
  Status Signal();

  // ucp_worker_print_info: transports, thread mode and address of this worker.
  std::string PrintInfo() const;

 private:
  UcxWorker(std::unique_ptr<detail::WorkerCore> core, std::vector<uint8_t> address, bool wakeup)
      : core_(std::move(core)), address_(std::move(address)), wakeup_(wakeup) {}
  void Destroy();

  std::unique_ptr<detail::WorkerCore> core_;
  std::vector<uint8_t> address_;
  bool wakeup_ = false;
  int efd_ = -1;
};

}  // namespace swrdma::rdma
