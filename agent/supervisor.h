// Keeps the agent serving when its data plane dies.
//
// UCX 1.13 (and UCX master as of 2026) aborts the process from inside ucp_worker_progress when a
// software-emulated get reply (tcp) cannot be sent because the client died mid-read
// ("ucp_request.inl: Fatal: unexpected error: Endpoint timeout", or an assertion on a pending
// wireup reply). No API lets the agent catch it, and any crashing or Ctrl-C'ed client could
// trigger it. So by default swrdma-agent runs its real work in a child process and restarts it
// when it dies by a signal: the index is persistent (a restart applies only new .idx tails),
// clients reconnect by themselves (new worker address, new rkeys). On rc/dc NICs gets never reach
// the agent's CPU and this path is not taken.
#pragma once

#include <chrono>
#include <functional>

namespace swrdma::agent {

struct SupervisorOptions {
  // Back-off between restarts grows from `min_backoff` to `max_backoff` while crashes follow each
  // other within `stable_after`; a child that ran that long resets it.
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(5)};
  std::chrono::seconds stable_after{30};
};

// Runs `child` in a forked process and returns its exit code. A child killed by a signal (a
// crash) is restarted; one that exits (0 after SIGTERM, or an error code for a bad configuration)
// ends the supervision with its code. SIGTERM, SIGINT and SIGHUP are forwarded to the child.
// Call before any thread is started.
int RunSupervised(const std::function<int()>& child, const SupervisorOptions& options = {});

}  // namespace swrdma::agent
