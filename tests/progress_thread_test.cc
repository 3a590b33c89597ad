// The agent's UCX progress thread (agent/progress_thread.h): adaptive mode spins only after
// traffic; an idle one sleeps on the worker's event fd, and a wait that ends with nothing to do
// (its 100 ms bound) goes straight back to sleep instead of spinning again.
#include "agent/progress_thread.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "rdma/ucx/ucx_context.h"
#include "rdma/ucx/ucx_worker.h"

namespace swrdma::agent {
namespace {

using namespace std::chrono_literals;

struct Started {
  rdma::UcxContext context;  // outlives the thread's worker
  std::unique_ptr<ProgressThread> thread;
};

std::optional<Started> StartThread(ProgressMode mode) {
  rdma::UcxContextOptions co;
  co.wakeup = true;
  co.transports = "tcp";
  auto context = rdma::UcxContext::Create(co);
  EXPECT_TRUE(context.has_value()) << context.error().ToString();
  if (!context) return std::nullopt;
  auto worker = rdma::UcxWorker::Create(*context);
  EXPECT_TRUE(worker.has_value()) << worker.error().ToString();
  if (!worker) return std::nullopt;
  ProgressOptions po;
  po.mode = mode;
  auto thread = ProgressThread::Start(std::move(*worker), po);
  EXPECT_TRUE(thread.has_value()) << thread.error().ToString();
  if (!thread) return std::nullopt;
  return Started{std::move(*context), std::move(*thread)};
}

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(ProgressThread, IdleAdaptiveThreadSleepsWithoutSpinningBetweenWaits) {
  auto started = StartThread(ProgressMode::kAdaptive);
  ASSERT_TRUE(started.has_value());
  ProgressThread& t = *started->thread;
  ASSERT_TRUE(WaitFor([&] { return t.sleeps() >= 2; }, 10s)) << "the idle thread never slept";
  const uint64_t s0 = t.sleeps(), i0 = t.idle_rounds();
  std::this_thread::sleep_for(600ms);
  const uint64_t s1 = t.sleeps(), i1 = t.idle_rounds();
  // Woken by its 100 ms bound a few times, each wake-up one empty round and asleep again. A
  // thread that spun spin_idle (200 µs) after each would show hundreds of rounds per wake-up.
  EXPECT_GE(s1 - s0, 2u) << "an idle thread wakes up at its 100 ms bound";
  EXPECT_LE(i1 - i0, 2 * (s1 - s0) + 4)
      << (i1 - i0) << " empty rounds for " << (s1 - s0) << " sleeps: the idle thread spins";
}

TEST(ProgressThread, APostedTaskWakesASleepingThreadAndRunsOnIt) {
  for (ProgressMode mode : {ProgressMode::kAdaptive, ProgressMode::kEvent}) {
    auto started = StartThread(mode);
    ASSERT_TRUE(started.has_value());
    ProgressThread& t = *started->thread;
    ASSERT_TRUE(WaitFor([&] { return t.sleeps() >= 1; }, 10s));
    std::promise<std::thread::id> ran;
    auto ran_on = ran.get_future();
    ASSERT_TRUE(t.Post([&](rdma::UcxWorker&) { ran.set_value(std::this_thread::get_id()); }).ok());
    ASSERT_EQ(ran_on.wait_for(5s), std::future_status::ready) << ProgressModeName(mode);
    EXPECT_NE(ran_on.get(), std::this_thread::get_id());
    t.Stop();
    EXPECT_EQ(t.Post([](rdma::UcxWorker&) {}).code(), Code::kUnavailable);
  }
}

}  // namespace
}  // namespace swrdma::agent
