#include "agent/progress_thread.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocol/thread_name.h"

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
  t->thread_ = std::thread([p = t.get()] {
    NameThisThread("sw-progress");
    p->Run();
  });
  return t;
}

ProgressThread::~ProgressThread() {
  Stop();
}

void ProgressThread::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(tasks_mu_);  // no task is accepted after this
    stop_.store(true);
  }
  if (options_.mode != ProgressMode::kBusy) worker_.Signal().IgnoreError();
  thread_.join();
}

void ProgressThread::LeakWorker() {
  Stop();
  worker_.KeepAlive();
}

Status ProgressThread::Post(Task task) {
  {
    std::lock_guard lock(tasks_mu_);
    if (stop_.load()) {
      return Status(Code::kUnavailable, "the agent's progress thread is stopping");
    }
    tasks_.push_back(std::move(task));
    has_tasks_.store(true, std::memory_order_release);
  }
  if (options_.mode != ProgressMode::kBusy) return worker_.Signal();
  return Status::Ok();
}

void ProgressThread::RunTasks() {
  std::vector<Task> tasks;
  {
    std::lock_guard lock(tasks_mu_);
    tasks.swap(tasks_);
    has_tasks_.store(false, std::memory_order_relaxed);
  }
  for (auto& task : tasks)
    task(worker_);
}

void ProgressThread::Run() {
  using Clock = std::chrono::steady_clock;
  auto last_event = Clock::now();
  uint64_t local_events = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    if (has_tasks_.load(std::memory_order_acquire)) {
      RunTasks();
      last_event = Clock::now();
    }
    const unsigned n = worker_.Progress();
    if (n > 0) {
      local_events += n;
      if ((local_events & 0x3ff) < n) events_.store(local_events, std::memory_order_relaxed);
      last_event = Clock::now();
      continue;
    }
    if (options_.mode == ProgressMode::kBusy) continue;
    idle_rounds_.fetch_add(1, std::memory_order_relaxed);
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
    // last_event stays: a wait that ended with nothing to do (the 100 ms bound) goes straight
    // back to sleep. An event or a task resets it above. Resetting it here made an idle agent
    // spin spin_idle ten times a second: measured on the host, the idle agent's CPU went from
    // 2.5 to 0.5 ms a second with this (VM step 13 found it: tests/vm/guest/agent_pass.sh).
  }
  events_.store(local_events, std::memory_order_relaxed);
  // Tasks posted just before the stop never run; dropping them breaks their promises, which
  // tells the waiting callers.
  std::lock_guard lock(tasks_mu_);
  tasks_.clear();
}

}  // namespace swrdma::agent
