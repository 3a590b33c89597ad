// The agent's UCX transports (agent/ucx_transports.h, issue 13): no UCX tcp unless asked for by
// name, and what a context created with the default really selects.
#include "agent/ucx_transports.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "rdma/ucx/ucx_context.h"
#include "rdma/ucx/ucx_resources.h"

namespace swrdma::agent {
namespace {

TEST(UcxTransportsTest, DefaultLeavesTcpOutFlagAndEnvironmentWin) {
  EXPECT_EQ(AgentUcxTransports(std::nullopt, nullptr, false), "^tcp");
  EXPECT_EQ(AgentUcxTransports(std::string("posix,sysv"), nullptr, false), "posix,sysv");
  EXPECT_EQ(AgentUcxTransports(std::string("rc"), "tcp", false), "rc");
  EXPECT_EQ(AgentUcxTransports(std::nullopt, "sysv", false), std::nullopt);  // UCX reads UCX_TLS
  EXPECT_EQ(AgentUcxTransports(std::nullopt, nullptr, true), std::nullopt);  // UCX's default
  EXPECT_EQ(AgentUcxTransports(std::string("posix"), nullptr, true), "posix");
}

TEST(UcxTransportsTest, TcpOnlyWithTheFlag) {
  const std::vector<std::string> shm = {"self", "sysv", "posix", "cma"};
  const std::vector<std::string> with_tcp = {"tcp", "posix"};
  EXPECT_TRUE(CheckUcxTcp(shm, "UCX_TLS=^tcp", false).ok());
  const Status refused = CheckUcxTcp(with_tcp, "UCX_TLS=tcp,posix", false);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("--insecure-ucx-tcp"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("UCX_TLS=tcp,posix"), std::string::npos) << refused.message();
  EXPECT_TRUE(CheckUcxTcp(with_tcp, "UCX_TLS=tcp,posix", true).ok());
}

TEST(UcxTransportsTest, TheDefaultSelectsNoTcpResource) {
  auto context =
      rdma::UcxContext::Create({.transports = AgentUcxTransports(std::nullopt, nullptr, false)});
  ASSERT_TRUE(context.has_value()) << context.error().ToString();
  auto resources = rdma::ListUcxResources(*context);
  ASSERT_TRUE(resources.has_value()) << resources.error().ToString();
  ASSERT_FALSE(resources->empty());
  for (const auto& r : *resources)
    EXPECT_NE(r.transport, "tcp") << r.device;
  // Shared memory stays, with peer error handling (UCX_MM_ERROR_HANDLING, set for "^tcp" too).
  EXPECT_TRUE(std::any_of(resources->begin(), resources->end(),
                          [](const auto& r) { return r.transport == "posix"; }));
  EXPECT_TRUE(context->shm_peer_failure());
}

TEST(UcxTransportsTest, VerbsIsOursNotUcxs) {
  bool named = false;
  EXPECT_EQ(WithoutVerbs(std::nullopt, &named), std::nullopt);
  EXPECT_FALSE(named);
  EXPECT_EQ(WithoutVerbs(std::string("posix,sysv"), &named), "posix,sysv");
  EXPECT_FALSE(named);
  EXPECT_EQ(WithoutVerbs(std::string("verbs,posix,,sysv"), &named), "posix,sysv");
  EXPECT_TRUE(named);
  // Only verbs: UCX takes its default for the checked paths.
  EXPECT_EQ(WithoutVerbs(std::string("verbs"), &named), std::nullopt);
  EXPECT_TRUE(named);
  // A name that merely contains it is some other transport.
  EXPECT_EQ(WithoutVerbs(std::string("rc_verbs,ud_verbs"), &named), "rc_verbs,ud_verbs");
  EXPECT_FALSE(named);
}

}  // namespace
}  // namespace swrdma::agent
