// Follows the volume server's changes: inotify on every volume directory, plus a periodic safety
// rescan, each triggering VolumeSet::Scan (which applies `.idx` tails, exports new and replaced
// files, and retires vanished ones).
//
// A burst of events is coalesced: the scan runs `debounce` after the first event of a burst, so an
// append is readable within roughly debounce + one scan.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "agent/volume_set.h"

namespace swrdma::agent {

struct WatcherOptions {
  std::chrono::milliseconds debounce{20};
  std::chrono::milliseconds rescan_interval{std::chrono::seconds(5)};
  // Called after every scan (on the watcher thread), e.g. to log the report.
  std::function<void(const ScanReport&)> on_scan;
};

class VolumeWatcher {
 public:
  // Watches every directory of `volumes.options().dirs`. Without inotify (or when a directory
  // cannot be watched) it says so and relies on the periodic rescan.
  static Result<std::unique_ptr<VolumeWatcher>> Start(VolumeSet& volumes,
                                                      const WatcherOptions& options);
  ~VolumeWatcher();  // Stop()
  VolumeWatcher(const VolumeWatcher&) = delete;
  VolumeWatcher& operator=(const VolumeWatcher&) = delete;

  void Stop();
  uint64_t scans() const { return scans_.load(); }
  bool inotify_active() const { return inotify_fd_ >= 0; }

 private:
  VolumeWatcher(VolumeSet& volumes, WatcherOptions options, int inotify_fd, int stop_fd);
  void Run();

  VolumeSet& volumes_;
  WatcherOptions options_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;  // eventfd that wakes the thread for Stop()
  std::atomic<uint64_t> scans_{0};
  std::thread thread_;
};

// True for names whose change means a volume changed: .dat, .idx, .vif.
bool IsVolumeFileName(std::string_view name);

}  // namespace swrdma::agent
