// Lets the agent's main wait for SIGTERM, SIGINT or SIGHUP instead of handling them
// asynchronously: the signals are blocked and collected with sigtimedwait, so no code runs in a
// signal handler and every thread keeps working until main decides to shut down.
#pragma once

#include <signal.h>

#include <chrono>
#include <optional>
#include <string_view>

#include "protocol/status.h"

namespace swrdma::agent {

class ShutdownSignal {
 public:
  // Blocks SIGTERM, SIGINT and SIGHUP in the calling thread. Call it in main before any thread
  // is started: threads inherit the mask, so a signal stays pending for Wait() rather than
  // being delivered to (and by default killing the process from) some other thread.
  static Result<ShutdownSignal> Block();

  // Discards signals still pending from the set, then restores the caller's previous mask.
  ~ShutdownSignal();
  ShutdownSignal(ShutdownSignal&& other) noexcept;
  ShutdownSignal& operator=(ShutdownSignal&&) = delete;
  ShutdownSignal(const ShutdownSignal&) = delete;
  ShutdownSignal& operator=(const ShutdownSignal&) = delete;

  // Blocks until one of the signals arrives and returns its number (SIGTERM, SIGINT, SIGHUP).
  int Wait();
  // As Wait(), giving up after `timeout`; nullopt if nothing arrived. Useful for a second
  // signal during a drain ("press Ctrl-C again to quit now").
  std::optional<int> WaitFor(std::chrono::milliseconds timeout);

  // Sends `sig` to this process, so that Wait() returns it: for a thread that hit a fatal error
  // and wants main to shut down the usual way.
  static void Raise(int sig = SIGTERM);

  // "SIGTERM", "SIGINT", "SIGHUP", or "signal" for any other.
  static std::string_view Name(int sig);

 private:
  explicit ShutdownSignal(const sigset_t& set, const sigset_t& previous)
      : set_(set), previous_(previous) {}

  sigset_t set_;
  sigset_t previous_;
  bool active_ = true;  // false once moved from
};

}  // namespace swrdma::agent
