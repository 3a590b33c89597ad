#include "http/shutdown_signal.h"

#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace swrdma::agent {

Result<ShutdownSignal> ShutdownSignal::Block() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigset_t previous;
  if (int err = pthread_sigmask(SIG_BLOCK, &set, &previous); err != 0) {
    return Error(Code::kInternal,
                 fmt::format("blocking SIGTERM/SIGINT/SIGHUP: {}", std::strerror(err)));
  }
  return ShutdownSignal(set, previous);
}

ShutdownSignal::ShutdownSignal(ShutdownSignal&& other) noexcept
    : set_(other.set_), previous_(other.previous_), active_(other.active_) {
  other.active_ = false;
}

ShutdownSignal::~ShutdownSignal() {
  if (!active_) return;
  // Unblocking with a signal pending would deliver it with its default action (exit), so take
  // the pending ones first.
  timespec zero{};
  while (sigtimedwait(&set_, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

int ShutdownSignal::Wait() {
  for (;;) {
    int sig = sigwaitinfo(&set_, nullptr);
    if (sig > 0) return sig;
    // EINTR: interrupted by a signal outside the set (e.g. a debugger); wait again.
  }
}

std::optional<int> ShutdownSignal::WaitFor(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) left = std::chrono::nanoseconds(0);
    timespec ts{.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000),
                .tv_nsec = static_cast<long>(left.count() % 1'000'000'000)};
    int sig = sigtimedwait(&set_, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno != EINTR || left.count() == 0) return std::nullopt;  // EAGAIN: timed out
  }
}

void ShutdownSignal::Raise(int sig) {
  kill(getpid(), sig);
}

std::string_view ShutdownSignal::Name(int sig) {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "signal";
  }
}

}  // namespace swrdma::agent
