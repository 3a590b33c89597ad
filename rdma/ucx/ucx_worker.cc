#include "rdma/ucx/ucx_worker.h"

#include <poll.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "rdma/ucx/capture_output.h"
#include "rdma/ucx/keep_alive.h"
#include "rdma/ucx/ucx_status.h"

namespace swrdma::rdma {
namespace detail {

unsigned WorkerCore::Progress() {
  unsigned events = ucp_worker_progress(handle);
  if (!abandoned_requests.empty()) ReapAbandoned();
  return events;
}

void WorkerCore::ReapAbandoned() {
  std::erase_if(abandoned_requests, [](void* request) {
    if (ucp_request_check_status(request) == UCS_INPROGRESS) return false;
    ucp_request_free(request);
    return true;
  });
}

void WorkerCore::DestroyAbandoned(void* object) {
  for (auto it = abandoned_objects.begin(); it != abandoned_objects.end(); ++it) {
    if (it->object == object) {
      AbandonedObject found = *it;
      abandoned_objects.erase(it);
      found.destroy(found.object);
      return;
    }
  }
}

}  // namespace detail

namespace {

ucs_thread_mode_t ToUcs(ThreadMode mode) {
  switch (mode) {
    case ThreadMode::kSingle:
      return UCS_THREAD_MODE_SINGLE;
    case ThreadMode::kSerialized:
      return UCS_THREAD_MODE_SERIALIZED;
    case ThreadMode::kMulti:
      return UCS_THREAD_MODE_MULTI;
  }
  return UCS_THREAD_MODE_SINGLE;
}

// How long a dying worker keeps progressing to let abandoned close requests finish.
constexpr auto kAbandonedGrace = std::chrono::milliseconds(200);

}  // namespace

Result<UcxWorker> UcxWorker::Create(const UcxContext& context, const UcxWorkerOptions& options) {
  if (context.get() == nullptr) {
    return Error(Code::kInvalidArgument, "creating UCX worker: the context is empty (moved from)");
  }
  ucp_worker_params_t params{};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  params.thread_mode = ToUcs(options.thread_mode);

  auto core = std::make_unique<detail::WorkerCore>();
  core->context = context.get();
  SWRDMA_RETURN_IF_ERROR(FromUcs(ucp_worker_create(context.get(), &params, &core->handle),
                                 "creating UCX worker (ucp_worker_create)"));

  ucp_address_t* address = nullptr;
  size_t length = 0;
  Status status = FromUcs(ucp_worker_get_address(core->handle, &address, &length),
                          "getting the UCX worker address (ucp_worker_get_address)");
  if (!status.ok()) {
    ucp_worker_destroy(core->handle);
    return Error(status);
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(address);
  std::vector<uint8_t> packed(bytes, bytes + length);
  ucp_worker_release_address(core->handle, address);
  return UcxWorker(std::move(core), std::move(packed), context.wakeup());
}

UcxWorker& UcxWorker::operator=(UcxWorker&& other) noexcept {
  if (this != &other) {
    Destroy();
    core_ = std::move(other.core_);
    address_ = std::move(other.address_);
    wakeup_ = other.wakeup_;
    efd_ = std::exchange(other.efd_, -1);
  }
  return *this;
}

UcxWorker::~UcxWorker() {
  Destroy();
}

void UcxWorker::Destroy() {
  if (!core_) return;
  const Deadline deadline = DeadlineIn(kAbandonedGrace);
  while (!core_->abandoned_requests.empty() && Clock::now() < deadline)
    core_->Progress();
  if (!core_->abandoned_requests.empty()) {
    // Neither freeing these requests (UCX asserts the endpoint has no protocol requests left) nor
    // destroying the worker with them (UCX asserts they were released) is survivable.
    KeepAlive();
    return;
  }
  ucp_worker_destroy(core_->handle);
  // No callback can run any more: what abandoned objects remain are ours to free.
  for (const detail::WorkerCore::AbandonedObject& a : core_->abandoned_objects) {
    a.destroy(a.object);
  }
  core_.reset();
}

void UcxWorker::KeepAlive() {
  if (!core_) return;
  KeepUcxContextAlive(core_->context);
  KeepUcxObjectAlive(core_.release());
  address_.clear();
  efd_ = -1;
}

Result<int> UcxWorker::efd() {
  if (!wakeup_) {
    return Error(Code::kUnsupported,
                 "UCX worker event fd: the context was created without wakeup support "
                 "(UcxContextOptions::wakeup)");
  }
  if (efd_ < 0) {
    int fd = -1;
    SWRDMA_RETURN_IF_ERROR(
        FromUcs(ucp_worker_get_efd(core_->handle, &fd), "getting the UCX worker event fd"));
    efd_ = fd;
  }
  return efd_;
}

Result<bool> UcxWorker::Arm() {
  ucs_status_t status = ucp_worker_arm(core_->handle);
  if (status == UCS_OK) return true;
  if (status == UCS_ERR_BUSY) return false;
  return Error(FromUcs(status, "arming the UCX worker event fd (ucp_worker_arm)"));
}

Status UcxWorker::WaitForEvents(std::chrono::milliseconds timeout) {
  SWRDMA_ASSIGN_OR_RETURN(int fd, efd());
  while (Progress() != 0) {
  }
  SWRDMA_ASSIGN_OR_RETURN(bool armed, Arm());
  if (!armed) return Status::Ok();  // events arrived meanwhile: the caller progresses them
  pollfd pfd{.fd = fd, .events = POLLIN, .revents = 0};
  int rc = poll(&pfd, 1, static_cast<int>(timeout.count()));
  if (rc < 0 && errno != EINTR) {
    return Status(Code::kIOError,
                  std::string("waiting on the UCX worker event fd: poll: ") + std::strerror(errno));
  }
  return Status::Ok();
}

Status UcxWorker::Signal() {
  return FromUcs(ucp_worker_signal(core_->handle), "waking the UCX worker (ucp_worker_signal)");
}

std::string UcxWorker::PrintInfo() const {
  if (!core_) return {};
  return CaptureOutput([this](FILE* stream) { ucp_worker_print_info(core_->handle, stream); });
}

}  // namespace swrdma::rdma
