#include "agent/volume_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cctype>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocol/thread_name.h"

namespace swrdma::agent {

bool IsVolumeFileName(std::string_view name) {
  if (name.ends_with(".dat") || name.ends_with(".idx") || name.ends_with(".vif")) return true;
  // EC volumes: the sorted index, the deletion journal and the shards .ec00 .. .ec31.
  if (name.ends_with(".ecx") || name.ends_with(".ecj")) return true;
  const size_t dot = name.rfind('.');
  return dot != std::string_view::npos && name.size() - dot == 5 && name.substr(dot, 3) == ".ec" &&
         std::isdigit(static_cast<unsigned char>(name[dot + 3])) &&
         std::isdigit(static_cast<unsigned char>(name[dot + 4]));
}

VolumeWatcher::VolumeWatcher(VolumeSet& volumes, WatcherOptions options, int inotify_fd,
                             int stop_fd)
    : volumes_(volumes), options_(std::move(options)), inotify_fd_(inotify_fd), stop_fd_(stop_fd) {}

Result<std::unique_ptr<VolumeWatcher>> VolumeWatcher::Start(VolumeSet& volumes,
                                                            const WatcherOptions& options) {
  const int stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) {
    return Error(Code::kIOError, fmt::format("eventfd: {}", std::strerror(errno)));
  }
  int ifd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (ifd < 0) {
    spdlog::warn("inotify unavailable ({}); following volume changes by rescanning every {} ms",
                 std::strerror(errno), options.rescan_interval.count());
  } else {
    // Appends (IN_MODIFY), files closed after writing, created, deleted, and renamed in or out
    // (vacuum renames .cpd/.cpx over .dat/.idx).
    constexpr uint32_t kMask = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                               IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
    for (const auto& dir : volumes.options().dirs) {
      if (::inotify_add_watch(ifd, dir.c_str(), kMask) < 0) {
        spdlog::warn("cannot watch {} ({}); relying on the periodic rescan for it", dir.string(),
                     std::strerror(errno));
      }
    }
  }
  std::unique_ptr<VolumeWatcher> w(new VolumeWatcher(volumes, options, ifd, stop_fd));
  w->thread_ = std::thread([p = w.get()] {
    NameThisThread("sw-watcher");
    p->Run();
  });
  return w;
}

VolumeWatcher::~VolumeWatcher() {
  Stop();
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void VolumeWatcher::Stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof(one));
  thread_.join();
}

void VolumeWatcher::Run() {
  using Clock = std::chrono::steady_clock;
  auto next_rescan = Clock::now() + options_.rescan_interval;
  bool pending = false;  // a coalesced scan is due at pending_at
  Clock::time_point pending_at = next_rescan;
  Clock::time_point first_event = next_rescan;  // of the burst the pending scan is for
  alignas(inotify_event) char buf[16 * 1024];
  while (true) {
    const auto now = Clock::now();
    auto due = next_rescan;
    if (pending && pending_at < due) due = pending_at;
    const int timeout_ms = static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(due - now).count() + 1));
    pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    const int n = ::poll(fds, inotify_fd_ >= 0 ? 2 : 1, timeout_ms);
    if (n < 0 && errno != EINTR) {
      spdlog::error("volume watcher: poll failed: {}; stopping inotify", std::strerror(errno));
      ::close(inotify_fd_);
      inotify_fd_ = -1;
    }
    if (fds[0].revents & POLLIN) return;
    if (inotify_fd_ >= 0 && (fds[1].revents & POLLIN)) {
      bool relevant = false;
      for (;;) {
        const ssize_t len = ::read(inotify_fd_, buf, sizeof(buf));
        if (len <= 0) break;
        for (ssize_t off = 0; off < len;) {
          const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
          if (ev->mask & IN_Q_OVERFLOW) relevant = true;  // lost events: just rescan
          if (ev->len > 0 && IsVolumeFileName(ev->name)) relevant = true;
          if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) relevant = true;
          off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
        }
      }
      if (relevant && !pending) {
        pending = true;
        first_event = Clock::now();
        pending_at = first_event + options_.debounce;
      }
    }
    const auto t = Clock::now();
    if ((pending && t >= pending_at) || t >= next_rescan) {
      const bool for_event = pending;
      pending = false;
      next_rescan = t + options_.rescan_interval;
      ScanReport report = volumes_.Scan();
      if (for_event) {
        report.change_to_applied_seconds =
            std::chrono::duration<double>(Clock::now() - first_event).count();
      }
      scans_.fetch_add(1);
      if (options_.on_scan) options_.on_scan(report);
    }
  }
}

}  // namespace swrdma::agent
