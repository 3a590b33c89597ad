#include "agent/progress_thread.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace swrdma::agent {

std::string_view ProgressModeName(ProgressMode m) {
  switch (m) {
    case ProgressMode::kBusy:
      return "busy";
    case ProgressMode::kEvent:
      return "event";
    case ProgressMode::kAdaptive:
      return "adaptive";
  }
  return "unknown";
}

Result<ProgressMode> ParseProgressMode(std::string_view name) {
  for (auto m : {ProgressMode::kBusy, ProgressMode::kEvent, ProgressMode::kAdaptive}) {
    if (ProgressModeName(m) == name) return m;
  }
  return Error(Code::kInvalidArgument,
               fmt::format("unknown progress mode '{}': use busy, event or adaptive", name));
}

ProgressThread::ProgressThread(rdma::UcxWorker worker, ProgressOptions options)
    : worker_(std::move(worker)), options_(options), address_(worker_.address()) {}

Result<std::unique_ptr<ProgressThread>> ProgressThread::Start(rdma::UcxWorker worker,
                                                              const ProgressOptions& options) {
  if (options.mode != ProgressMode::kBusy) {
    auto efd = worker.efd();
    if (!efd) {
      return Error(efd.error().WithContext(fmt::format(
          "progress mode '{}' needs the worker's event fd", ProgressModeName(options.mode))));
    }
  }
  std::unique_ptr<ProgressThread> t(new ProgressThread(std::move(worker), options));
  t->thread_ = std::thread([p = t.get()] { p->Run(); });
  return t;
}

ProgressThread::~ProgressThread() {
  Stop();
}

void ProgressThread::Stop() {
  if (!thread_.joinable()) return;
  stop_.store(true);
  if (options_.mode != ProgressMode::kBusy) worker_.Signal().IgnoreError();
  thread_.join();
}

void ProgressThread::Run() {
  using Clock = std::chrono::steady_clock;
  auto last_event = Clock::now();
  uint64_t local_events = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    const unsigned n = worker_.Progress();
    if (n > 0) {
      local_events += n;
      if ((local_events & 0x3ff) < n) events_.store(local_events, std::memory_order_relaxed);
      last_event = Clock::now();
      continue;
    }
    if (options_.mode == ProgressMode::kBusy) continue;
    if (options_.mode == ProgressMode::kAdaptive &&
        Clock::now() - last_event < options_.spin_idle) {
      continue;
    }
    events_.store(local_events, std::memory_order_relaxed);
    sleeps_.fetch_add(1, std::memory_order_relaxed);
    // Bounded wait so a missed signal can never hang shutdown.
    Status s = worker_.WaitForEvents(std::chrono::milliseconds(100));
    if (!s.ok()) {
      spdlog::warn("progress thread: waiting for worker events failed: {}; falling back to polling",
                   s.ToString());
      options_.mode = ProgressMode::kBusy;
    }
    last_event = Clock::now();
  }
  events_.store(local_events, std::memory_order_relaxed);
}

}  // namespace swrdma::agent
