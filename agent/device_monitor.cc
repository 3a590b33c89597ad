#include "agent/device_monitor.h"

#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "protocol/thread_name.h"

namespace swrdma::agent {
namespace {

std::string DescribePorts(const rdma::RdmaDevice& d) {
  std::vector<std::string> ports;
  for (const auto& p : d.ports)
    ports.push_back(fmt::format("port {} {} {}", p.number, p.state, p.link_layer));
  return ports.empty() ? "no ports" : fmt::format("{}", fmt::join(ports, ", "));
}

const rdma::RdmaPort* FindPort(const rdma::RdmaDevice& d, uint32_t number) {
  for (const auto& p : d.ports)
    if (p.number == number) return &p;
  return nullptr;
}

}  // namespace

std::vector<std::string> DescribeDeviceChanges(const rdma::RdmaDiscovery& before,
                                               const rdma::RdmaDiscovery& after) {
  std::vector<std::string> out;
  std::map<std::string, const rdma::RdmaDevice*> old_devices, new_devices;
  for (const auto& d : before.devices)
    old_devices[d.name] = &d;
  for (const auto& d : after.devices)
    new_devices[d.name] = &d;
  for (const auto& [name, d] : new_devices) {
    auto it = old_devices.find(name);
    if (it == old_devices.end()) {
      out.push_back(fmt::format(
          "RDMA device {} appeared ({}); UCX picks devices at start: restart the agent to use it",
          name, DescribePorts(*d)));
      continue;
    }
    for (const auto& p : d->ports) {
      const rdma::RdmaPort* old = FindPort(*it->second, p.number);
      if (old == nullptr) {
        out.push_back(fmt::format("RDMA port {}:{} appeared ({})", name, p.number, p.state));
      } else if (old->state != p.state || old->link_layer != p.link_layer) {
        out.push_back(fmt::format("RDMA port {}:{} {} -> {}", name, p.number, old->state, p.state));
      }
    }
    for (const auto& p : it->second->ports) {
      if (FindPort(*d, p.number) == nullptr) {
        out.push_back(fmt::format("RDMA port {}:{} is gone", name, p.number));
      }
    }
  }
  for (const auto& [name, d] : old_devices) {
    if (!new_devices.contains(name)) {
      out.push_back(
          fmt::format("RDMA device {} is gone; clients reading over it fail over to "
                      "what remains (restart the agent once it is back)",
                      name));
    }
  }
  if (before.messages != after.messages) {
    for (const auto& m : after.messages)
      out.push_back(m);
  }
  return out;
}

size_t ActivePorts(const rdma::RdmaDiscovery& discovery) {
  size_t n = 0;
  for (const auto& d : discovery.devices)
    for (const auto& p : d.ports)
      n += p.state == "PORT_ACTIVE" ? 1 : 0;
  return n;
}

DeviceMonitor::DeviceMonitor(rdma::RdmaDiscovery initial, DeviceMonitorOptions options)
    : options_(std::move(options)), last_(std::move(initial)) {
  if (!options_.discover) options_.discover = [] { return rdma::DiscoverRdmaDevices(); };
  if (!options_.log) options_.log = [](const std::string& line) { spdlog::warn("{}", line); };
}

Result<std::unique_ptr<DeviceMonitor>> DeviceMonitor::Start(rdma::RdmaDiscovery initial,
                                                            DeviceMonitorOptions options) {
  if (options.interval <= std::chrono::milliseconds::zero()) {
    return Error(Code::kInvalidArgument, "device rescan interval must be positive");
  }
  std::unique_ptr<DeviceMonitor> m(new DeviceMonitor(std::move(initial), std::move(options)));
  if (m->options_.on_scan) m->options_.on_scan(m->last_);
  m->thread_ = std::thread([p = m.get()] {
    NameThisThread("sw-devmon");
    p->Run();
  });
  return m;
}

DeviceMonitor::~DeviceMonitor() {
  Stop();
}

void DeviceMonitor::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DeviceMonitor::ScanOnce() {
  rdma::RdmaDiscovery now = options_.discover();
  std::vector<std::string> changes;
  {
    std::lock_guard lock(mu_);
    changes = DescribeDeviceChanges(last_, now);
    last_ = now;
  }
  for (const auto& line : changes)
    options_.log(line);
  if (options_.on_scan) options_.on_scan(now);
}

void DeviceMonitor::Run() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, options_.interval, [this] { return stop_; })) {
    lock.unlock();
    ScanOnce();
    lock.lock();
  }
}

}  // namespace swrdma::agent
