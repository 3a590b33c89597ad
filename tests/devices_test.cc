// Device discovery runs everywhere and agrees with libibverbs; UCX resources are listed.
#include "rdma/devices.h"
#include "rdma/ucx/ucx_resources.h"

#include <infiniband/verbs.h>

#include <gtest/gtest.h>

namespace swrdma::rdma {
namespace {

int VerbsDeviceCount() {
  int count = 0;
  ibv_device** list = ibv_get_device_list(&count);
  if (list == nullptr) return 0;
  ibv_free_device_list(list);
  return count;
}

TEST(DevicesTest, DiscoveryAgreesWithVerbs) {
  const int expected = VerbsDeviceCount();
  RdmaDiscovery discovery = DiscoverRdmaDevices();
  ASSERT_EQ(discovery.devices.size(), static_cast<size_t>(expected));
  std::cout << "RDMA discovery:\n" << discovery.Summary();
  if (expected == 0) {
    ASSERT_FALSE(discovery.messages.empty());
    EXPECT_TRUE(discovery.messages.front().starts_with(kNoRdmaDevicesMessage))
        << discovery.messages.front();
    EXPECT_NE(discovery.Summary().find(kNoRdmaDevicesMessage), std::string::npos);
    return;
  }
  for (const RdmaDevice& device : discovery.devices) {
    EXPECT_FALSE(device.name.empty());
    if (!device.problems.empty()) continue;  // e.g. no permission on /dev/infiniband
    EXPECT_GT(device.max_mr_size, 0u) << device.name;
    EXPECT_FALSE(device.ports.empty()) << device.name;
    for (const RdmaPort& port : device.ports) {
      EXPECT_GE(port.number, 1u);
      EXPECT_FALSE(port.state.empty());
      for (const RdmaGid& gid : port.gids)
        EXPECT_NE(gid.gid, "::");
    }
  }
}

TEST(DevicesTest, ListsTheUcxResourcesAContextSelected) {
  auto context = UcxContext::Create({.transports = "tcp,posix,sysv", .net_devices = "lo"});
  ASSERT_TRUE(context.has_value()) << context.error().ToString();
  auto resources = ListUcxResources(*context);
  ASSERT_TRUE(resources.has_value()) << resources.error().ToString();
  bool tcp_lo = false;
  for (const UcxResource& r : *resources) {
    std::cout << "UCX resource " << r.transport << "/" << r.device << "\n";
    EXPECT_TRUE(r.transport == "tcp" || r.transport == "posix" || r.transport == "sysv")
        << r.transport;
    if (r.transport == "tcp") {
      EXPECT_EQ(r.device, "lo");
      tcp_lo = true;
    }
  }
  EXPECT_TRUE(tcp_lo);
}

TEST(DevicesTest, UnknownTransportFailsContextCreationClearly) {
  auto context = UcxContext::Create({.transports = "no_such_transport"});
  ASSERT_FALSE(context.has_value());
  EXPECT_NE(context.error().message().find("UCX_TLS=no_such_transport"), std::string::npos)
      << context.error().ToString();
}

TEST(UcxContextTest, ExplicitOptionsWinOverTheEnvironment) {
  // No other thread runs in this binary, so changing the environment here is safe.
  ASSERT_EQ(setenv("UCX_TLS", "no_such_transport", 1), 0);
  auto from_env = UcxContext::Create({.net_devices = "lo"});
  EXPECT_FALSE(from_env.has_value());  // the environment applied
  auto explicit_tls = UcxContext::Create({.transports = "tcp", .net_devices = "lo"});
  ASSERT_TRUE(explicit_tls.has_value()) << explicit_tls.error().ToString();
  EXPECT_EQ(explicit_tls->transports(), "tcp");
  ASSERT_EQ(setenv("UCX_TLS", "tcp", 1), 0);
  auto env_tcp = UcxContext::Create({.net_devices = "lo"});
  ASSERT_TRUE(env_tcp.has_value()) << env_tcp.error().ToString();
  EXPECT_EQ(env_tcp->transports(), "tcp");
  ASSERT_EQ(unsetenv("UCX_TLS"), 0);
}

}  // namespace
}  // namespace swrdma::rdma
