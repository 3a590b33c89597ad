#include "agent/supervisor.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "agent/heap.h"

namespace swrdma::agent {

int RunSupervised(const std::function<int()>& child, const SupervisorOptions& options) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD})
    sigaddset(&set, s);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &set, &previous);

  using Clock = std::chrono::steady_clock;
  auto backoff = options.min_backoff;
  int restarts = 0;
  while (true) {
    const auto started = Clock::now();
    const pid_t pid = fork();
    if (pid < 0) {
      spdlog::critical("supervisor: fork failed: {}; running without supervision",
                       std::strerror(errno));
      pthread_sigmask(SIG_SETMASK, &previous, nullptr);
      return child();
    }
    if (pid == 0) {
      // Dies with the supervisor (even on kill -9 of it), never outlives it.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() == 1) _exit(1);
      pthread_sigmask(SIG_SETMASK, &previous, nullptr);
      const int rc = child();
      CheckLeaksBeforeExit();  // ASan builds: _exit skips LeakSanitizer's check at exit
      _exit(rc);
    }

    int status = 0;
    bool stopping = false;
    while (true) {
      siginfo_t info{};
      const int sig = sigwaitinfo(&set, &info);
      if (sig < 0) {
        if (errno == EINTR) continue;
        spdlog::critical("supervisor: sigwaitinfo failed: {}", std::strerror(errno));
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
        return 1;
      }
      if (sig == SIGCHLD) {
        // Our other child, when there is one, is the read-token verifier holding the read key
        // (agent/token_verifier.h). It cannot be restarted from here (this process never had
        // the key): without it every token is refused, so stop, and let the service manager
        // start the agent again (the unit restarts it on failure).
        bool child_exited = false;
        int st = 0;
        pid_t r;
        while ((r = waitpid(-1, &st, WNOHANG)) > 0) {
          if (r == pid) {
            status = st;
            child_exited = true;
            continue;
          }
          if (stopping) continue;  // going down anyway
          spdlog::critical(
              "supervisor: the read-token verifier (pid {}, holding the read key) died ({}); "
              "every read that needs a token would be refused: stopping the agent so that it is "
              "started again with a new one (systemd: Restart=on-failure)",
              r, WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exited");
          kill(pid, SIGTERM);
          if (!child_exited) waitpid(pid, &st, 0);
          return 1;
        }
        if (child_exited) break;
        continue;
      }
      if (sig == SIGTERM || sig == SIGINT) stopping = true;
      kill(pid, sig);  // forward
    }

    if (WIFEXITED(status)) return WEXITSTATUS(status);  // orderly exit or bad configuration
    const int sig = WTERMSIG(status);
    if (stopping) return 128 + sig;
    ++restarts;
    if (Clock::now() - started >= options.stable_after) backoff = options.min_backoff;
    spdlog::error(
        "supervisor: the agent process died of signal {} ({}) after {} s; restarting it in {} ms "
        "(restart {}). On tcp/shared memory this is usually UCX aborting when a client died "
        "mid-read; clients reconnect by themselves",
        sig, strsignal(sig),
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started).count(),
        backoff.count(), restarts);
    // Wait out the back-off, still honouring SIGTERM/SIGINT.
    timespec ts{static_cast<time_t>(backoff.count() / 1000),
                static_cast<long>((backoff.count() % 1000) * 1'000'000)};
    const auto until = Clock::now() + backoff;
    while (Clock::now() < until) {
      const int s = sigtimedwait(&set, nullptr, &ts);
      if (s == SIGTERM || s == SIGINT) return 0;
      if (s < 0 && errno == EAGAIN) break;
    }
    backoff = std::min(backoff * 2, options.max_backoff);
  }
}

}  // namespace swrdma::agent
