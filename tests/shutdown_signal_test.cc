// Signals are sent to this single-threaded test process while they are blocked, so they stay
// pending for ShutdownSignal instead of killing it.
#include "http/shutdown_signal.h"

#include <pthread.h>
#include <signal.h>

#include <chrono>

#include <gtest/gtest.h>

namespace swrdma::agent {
namespace {

using namespace std::chrono_literals;

TEST(ShutdownSignal, ReturnsWhichSignalArrived) {
  auto sig = ShutdownSignal::Block();
  ASSERT_TRUE(sig.has_value()) << sig.error().ToString();
  EXPECT_EQ(sig->WaitFor(0ms), std::nullopt);

  pthread_kill(pthread_self(), SIGHUP);
  EXPECT_EQ(sig->WaitFor(5s), SIGHUP);

  ShutdownSignal::Raise(SIGINT);  // process-directed, as kill(1) would send it
  EXPECT_EQ(sig->Wait(), SIGINT);

  ShutdownSignal::Raise();
  EXPECT_EQ(sig->WaitFor(5s), SIGTERM);
  EXPECT_EQ(sig->WaitFor(10ms), std::nullopt);
}

TEST(ShutdownSignal, PendingSignalIsDiscardedOnDestruction) {
  {
    auto sig = ShutdownSignal::Block();
    ASSERT_TRUE(sig.has_value());
    ShutdownSignal moved = std::move(*sig);  // the moved-from one must not unblock
    pthread_kill(pthread_self(), SIGTERM);
  }
  // Still alive: the pending SIGTERM was consumed before the mask was restored.
  sigset_t now;
  pthread_sigmask(SIG_BLOCK, nullptr, &now);
  EXPECT_FALSE(sigismember(&now, SIGTERM));
}

TEST(ShutdownSignal, Names) {
  EXPECT_EQ(ShutdownSignal::Name(SIGTERM), "SIGTERM");
  EXPECT_EQ(ShutdownSignal::Name(SIGINT), "SIGINT");
  EXPECT_EQ(ShutdownSignal::Name(SIGHUP), "SIGHUP");
  EXPECT_EQ(ShutdownSignal::Name(SIGUSR1), "signal");
}

}  // namespace
}  // namespace swrdma::agent
