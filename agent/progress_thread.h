// The thread that owns the agent's UCX worker and keeps it progressing.
//
// Without RDMA hardware every one-sided get a client posts is emulated by UCX as a request the
// target worker must answer, so this thread's progress loop IS the data path on tcp and shared
// memory. On rc/dc NICs the NIC answers gets and the loop only handles connection events.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "protocol/status.h"
#include "rdma/ucx/ucx_worker.h"

namespace swrdma::agent {

enum class ProgressMode : uint8_t {
  kBusy,      // spin on ucp_worker_progress: lowest latency, one core at 100% always
  kEvent,     // block on the worker's event fd between events: ~0% idle, +10-15 us per tcp get
  kAdaptive,  // spin while there is traffic, block after `spin_idle` without any (default)
};

std::string_view ProgressModeName(ProgressMode m);
Result<ProgressMode> ParseProgressMode(std::string_view name);

struct ProgressOptions {
  ProgressMode mode = ProgressMode::kAdaptive;
  // kAdaptive: how long to keep spinning after the last event before blocking.
  std::chrono::microseconds spin_idle{200};
};

class ProgressThread {
 public:
  // Takes the worker; from now on only this thread touches it. Event and adaptive modes need a
  // context created with wakeup (kUnsupported otherwise).
  static Result<std::unique_ptr<ProgressThread>> Start(rdma::UcxWorker worker,
                                                       const ProgressOptions& options);
  ~ProgressThread();  // Stop()
  ProgressThread(const ProgressThread&) = delete;
  ProgressThread& operator=(const ProgressThread&) = delete;

  const std::vector<uint8_t>& worker_address() const { return address_; }
  // Stops the loop and joins; the worker is destroyed with this object.
  void Stop();
  // Stops, and the worker is never destroyed (the process is exiting and UCX still holds
  // sends to clients that vanished; destroying it would abort in UCX 1.13), nor its context
  // (UcxWorker::KeepAlive).
  void LeakWorker();

  // Runs `task` on this thread, with the worker, between two progress rounds (the checked-read
  // server registers and unregisters its handler this way: only this thread may touch the worker).
  // The task may progress the worker itself while it waits for its own operations. kUnavailable
  // once stopped (the task is then dropped, never run).
  using Task = std::function<void(rdma::UcxWorker&)>;
  Status Post(Task task);

  uint64_t events() const { return events_.load(std::memory_order_relaxed); }
  uint64_t sleeps() const { return sleeps_.load(std::memory_order_relaxed); }
  // Rounds that found nothing to do (adaptive: the spin; every mode: the round before a sleep).
  uint64_t idle_rounds() const { return idle_rounds_.load(std::memory_order_relaxed); }

 private:
  ProgressThread(rdma::UcxWorker worker, ProgressOptions options);
  void Run();

  rdma::UcxWorker worker_;
  ProgressOptions options_;
  std::vector<uint8_t> address_;
  void RunTasks();

  std::atomic<bool> stop_{false};
  std::mutex tasks_mu_;
  std::vector<Task> tasks_;  // guarded by tasks_mu_
  std::atomic<bool> has_tasks_{false};
  std::atomic<uint64_t> events_{0};
  std::atomic<uint64_t> sleeps_{0};
  std::atomic<uint64_t> idle_rounds_{0};
  std::thread thread_;
};

}  // namespace swrdma::agent
