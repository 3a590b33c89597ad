// Periodic rescan of the host's RDMA devices (rdma::DiscoverRdmaDevices): logs hot-plug changes
// (a device or port appearing, disappearing or changing state) and reports counts for metrics.
// UCX itself picks its devices once, at start: a new or recovered port is used after a restart,
// which is why a change is worth a log line. A host without devices says so once, not every scan.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "protocol/status.h"
#include "rdma/devices.h"

namespace swrdma::agent {

// Lines describing what changed from `before` to `after` ("RDMA device mlx5_1 appeared: ...",
// "RDMA port mlx5_0:1 PORT_ACTIVE -> PORT_DOWN", ...); empty when nothing did. Discovery
// messages (no devices, a device that cannot be opened) count as changes when they differ.
std::vector<std::string> DescribeDeviceChanges(const rdma::RdmaDiscovery& before,
                                               const rdma::RdmaDiscovery& after);

// Ports in state PORT_ACTIVE over every device.
size_t ActivePorts(const rdma::RdmaDiscovery& discovery);

struct DeviceMonitorOptions {
  std::chrono::milliseconds interval{std::chrono::seconds(60)};
  // Replaceable for tests; defaults to rdma::DiscoverRdmaDevices.
  std::function<rdma::RdmaDiscovery()> discover;
  // After every scan, including the first (on the monitor thread): e.g. metrics.
  std::function<void(const rdma::RdmaDiscovery&)> on_scan;
  // Each change line; defaults to spdlog::warn.
  std::function<void(const std::string&)> log;
};

class DeviceMonitor {
 public:
  // `initial` is the discovery the agent logged at start: only differences from it are logged.
  static Result<std::unique_ptr<DeviceMonitor>> Start(rdma::RdmaDiscovery initial,
                                                      DeviceMonitorOptions options);
  ~DeviceMonitor();  // Stop()
  DeviceMonitor(const DeviceMonitor&) = delete;
  DeviceMonitor& operator=(const DeviceMonitor&) = delete;

  void Stop();
  // Scans now, on the caller's thread (the thread does the same every interval).
  void ScanOnce();

 private:
  DeviceMonitor(rdma::RdmaDiscovery initial, DeviceMonitorOptions options);
  void Run();

  DeviceMonitorOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  rdma::RdmaDiscovery last_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace swrdma::agent
