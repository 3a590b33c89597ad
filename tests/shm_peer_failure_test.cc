// Does a worker release what it holds for a shared-memory peer once that peer's process is gone?
//
// When a client connects to a worker by its address, UCX 1.13 creates a reply endpoint inside the
// target worker (ucp_wireup_process_request -> ucp_ep_create_base, never handed to the user) and
// maps the client's posix/SysV segments for it. Nothing the client does on close reaches the
// target (ucp_ep_close_nbx in flush mode keeps a remote-connected endpoint until the worker is
// destroyed, force mode needs peer error handling, ucp_worker_destroy sends nothing), so only
// UCX's keepalive can release it: ucp_ep_set_failed on an endpoint not exposed to the user destroys
// it. Keepalive runs only on peer-error-handling endpoints, which posix offers only with
// UCX_MM_ERROR_HANDLING=y (UcxContextOptions::shm_peer_failure). These tests run real client
// processes (this binary re-executed) against an in-process agent (its worker on its progress
// thread) and count the test process's shared mappings (/proc/self/maps). Each client makes one
// checked read (the agent answers on its reply endpoint, over the client's segments, as it does for
// every reader: the agent's context has no RMA, so a get would get no answer).
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "client/checked_reader.h"
#include "protocol/file_id.h"
#include "rdma/buffer_pool.h"
#include "rdma/ucx/memory_region.h"
#include "rdma/ucx/ucx_context.h"
#include "rdma/ucx/ucx_endpoint.h"
#include "rdma/ucx/ucx_worker.h"
#include "tests/generated_volume.h"
#include "tests/in_process_agent.h"
#include "tests/test_util.h"

extern char** environ;

namespace swrdma::rdma {
namespace {

using namespace std::chrono_literals;

constexpr char kShmTransports[] = "posix,sysv,cma";
constexpr char kAddressEnv[] = "SWRDMA_SHM_TEST_TARGET";
constexpr char kPeerEnv[] = "SWRDMA_SHM_TEST_PEER";
constexpr char kLingerEnv[] = "SWRDMA_SHM_TEST_LINGER_MS";
constexpr char kFidEnv[] = "SWRDMA_SHM_TEST_FID";  // a live needle to read
constexpr int kClients = 4;

// Shared mappings of this process (/proc/self/maps lines with an 's' permission): the peers'
// SysV and posix segments are among them; heap arenas and thread stacks, which come and go
// with UCX's and the allocator's own business, are not.
size_t MapsLines() {
  std::ifstream maps("/proc/self/maps");
  size_t n = 0;
  for (std::string line; std::getline(maps, line);) {
    const size_t space = line.find(' ');
    if (space != std::string::npos && space + 4 < line.size() && line[space + 4] == 's') ++n;
  }
  return n;
}

std::string Hex(const std::vector<uint8_t>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

std::vector<uint8_t> Unhex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

UcxContextOptions ContextOptions(bool peer) {
  UcxContextOptions o;
  o.transports = kShmTransports;
  o.shm_peer_failure = peer;
  // Short rounds so that the test does not wait 20 s for UCX's default.
  o.config["KEEPALIVE_INTERVAL"] = "100ms";
  return o;
}

// Is a Yama setting or a container keeping CMA/posix from working here? Then skip.
bool ShmUsable() {
  std::ifstream yama("/proc/sys/kernel/yama/ptrace_scope");
  int scope = 0;
  return !(yama >> scope) || scope < 2;
}

// The client side, run in a child process by the tests below (skipped when run directly):
// connects to the target named in the environment, reads from it (so that the target has
// answered over its reply endpoint while this process lives), and exits.
TEST(ShmPeerFailureChild, ConnectAndExit) {
  const char* address = std::getenv(kAddressEnv);
  if (address == nullptr) GTEST_SKIP() << "helper of ShmPeerFailureTest, run by it";
  {  // every UCX object of this process lives in this scope
    const bool peer = std::string_view(std::getenv(kPeerEnv)) == "1";
    auto context = UcxContext::Create(ContextOptions(peer));
    ASSERT_TRUE(context.has_value()) << context.error().ToString();
    auto worker = UcxWorker::Create(*context);
    ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
    auto ep = UcxEndpoint::Connect(
        *worker, Unhex(address),
        {.error_handling = peer ? PeerErrorHandling::kRequirePeer : PeerErrorHandling::kNone,
         .connect_timeout = 10s});
    ASSERT_TRUE(ep.has_value()) << ep.error().ToString();
    ASSERT_EQ(ep->peer_error_handling(), peer);
    auto transports = ep->Transports();
    ASSERT_TRUE(transports.has_value()) << transports.error().ToString();
    std::cerr << "client endpoint lanes: " << transports->Summary() << "\n";
    UcxRegistrar registrar(*context);
    auto pool = BufferPool::Create(registrar);
    ASSERT_TRUE(pool.has_value()) << pool.error().ToString();
    auto reader = client::CheckedReader::Create(*worker, *ep, *pool);
    ASSERT_TRUE(reader.has_value()) << reader.error().ToString();
    const std::string fid = std::getenv(kFidEnv);
    const ReadRequestEntry entry{fid, {}};
    const size_t tag = 0;
    ASSERT_TRUE((*reader)->Send({&entry, 1}, {&tag, 1}, false).ok());
    std::vector<client::CheckedArrival> arrivals;
    const auto deadline = DeadlineIn(10s);
    while (arrivals.empty()) {
      Status s = (*reader)->Poll(arrivals, deadline);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    ASSERT_TRUE(arrivals[0].error.ok()) << arrivals[0].error.ToString();
    EXPECT_EQ(arrivals[0].header.status, ReadStatus::kOk) << arrivals[0].reason;
    EXPECT_GT(arrivals[0].header.length, 0u);
    arrivals.clear();
    reader->reset();
  }
  // Linger: the process stays a while after its UCX state is gone.
  if (const char* linger = std::getenv(kLingerEnv); linger != nullptr && std::atoi(linger) > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(linger)));
  }
}

class ShmPeerFailureTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (!ShmUsable()) GTEST_SKIP() << "Yama ptrace_scope >= 2: CMA cannot work here";
    std::filesystem::create_directories(dir_ / "vols");
    GenerateOptions g;
    g.dir = dir_ / "vols";
    g.volume_id = 3;
    g.needles = 8;
    g.min_size = 64;
    g.max_size = 4096;
    g.delete_fraction = 0;
    g.seed = 7;
    testing::ExpectedNeedles expected;
    testing::GenerateExpected(g, expected);
    ASSERT_FALSE(expected.empty());
    fid_ = expected.begin()->first;
    testing::InProcessAgentOptions ao;
    ao.ucx = ContextOptions(GetParam());
    ao.ucx.wakeup = true;
    agent_.emplace(std::vector<std::filesystem::path>{dir_ / "vols"}, dir_ / "index", ao);
  }
  void TearDown() override { agent_.reset(); }

  // Runs one client process to its end, progressing the target worker meanwhile.
  void RunClient() {
    pid_t pid = -1;
    ASSERT_NO_FATAL_FAILURE(SpawnClient(pid));
    ASSERT_NO_FATAL_FAILURE(WaitClient(pid));
  }

  // Starts a client process; with `linger`, it stays alive that long after it destroyed its
  // endpoint, worker and context.
  void SpawnClient(pid_t& pid, std::chrono::milliseconds linger = 0ms) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e)
      env_strings.emplace_back(*e);
    env_strings.push_back(std::string(kAddressEnv) + "=" + Hex(agent_->worker_address()));
    env_strings.push_back(std::string(kPeerEnv) + "=" + (GetParam() ? "1" : "0"));
    env_strings.push_back(std::string(kFidEnv) + "=" + fid_);
    env_strings.push_back(std::string(kLingerEnv) + "=" + std::to_string(linger.count()));
    std::vector<char*> env;
    for (auto& s : env_strings)
      env.push_back(s.data());
    env.push_back(nullptr);
    std::string exe = "/proc/self/exe";
    std::string filter = "--gtest_filter=ShmPeerFailureChild.ConnectAndExit";
    char* argv[] = {exe.data(), filter.data(), nullptr};
    // The child's gtest banner is noise here; its stderr (failures, lanes) is kept.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    const int spawned = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, env.data());
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(spawned, 0);
  }

  // The agent's progress thread answers meanwhile.
  void WaitClient(pid_t pid) {
    int status = 0;
    const auto deadline = DeadlineIn(30s);
    while (waitpid(pid, &status, WNOHANG) == 0) {
      std::this_thread::sleep_for(5ms);
      if (Clock::now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        FAIL() << "client process did not finish in 30 s";
      }
    }
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "client process failed";
  }

  // Waits (the agent's progress thread runs keepalive) until the mappings are back to `limit` or
  // `wait` passed.
  size_t ProgressUntilMapsAtMost(size_t limit, std::chrono::milliseconds wait) {
    const auto deadline = DeadlineIn(wait);
    size_t maps = MapsLines();
    while (maps > limit && Clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
      maps = MapsLines();
    }
    return maps;
  }

  testing::TempDir dir_{"swrdma-shm-peer"};
  std::optional<testing::InProcessAgent> agent_;
  std::string fid_;
};

TEST_P(ShmPeerFailureTest, TargetReleasesEndpointsOfExitedClients) {
  const bool peer = GetParam();
  // Warm-up: the first connection grows the target's own pools.
  ASSERT_NO_FATAL_FAILURE(RunClient());
  ProgressUntilMapsAtMost(0, 1s);
  const size_t baseline = ProgressUntilMapsAtMost(0, 0ms);
  for (int i = 0; i < kClients; ++i)
    ASSERT_NO_FATAL_FAILURE(RunClient());
  const size_t after_clients = MapsLines();
  // Peer mode: keepalive rounds every 100 ms find the processes gone; 10 s is generous.
  const size_t settled = ProgressUntilMapsAtMost(baseline, peer ? 10s : 2s);
  RecordProperty("baseline_maps", static_cast<int>(baseline));
  RecordProperty("maps_after_clients", static_cast<int>(after_clients));
  RecordProperty("maps_settled", static_cast<int>(settled));
  std::cerr << "peer=" << peer << " maps: baseline " << baseline << ", after " << kClients
            << " clients " << after_clients << ", settled " << settled << "\n";
  if (peer) {
    // (Keepalive may have released the first clients' mappings before the last one ran.)
    EXPECT_LE(settled, baseline) << "the target kept mappings of clients that exited";
  } else {
    // Documents UCX 1.13 without shared-memory error handling: every reply endpoint stays, with
    // the client's segments mapped (3 mappings per client here). Also proves the setup leaks.
    EXPECT_GE(after_clients, baseline + kClients) << "each client should have mapped something";
    EXPECT_GE(settled, baseline + kClients);
  }
}

TEST(UcxContextShmPeerFailureTest, OnWhereSharedMemoryMayBeSelected) {
  auto shm = UcxContext::Create({.transports = kShmTransports});
  ASSERT_TRUE(shm.has_value()) << shm.error().ToString();
  EXPECT_TRUE(shm->shm_peer_failure());
  // tcp only: not set (UCX would warn that no transport uses the option).
  auto tcp = UcxContext::Create({.transports = "tcp", .net_devices = "lo"});
  ASSERT_TRUE(tcp.has_value()) << tcp.error().ToString();
  EXPECT_FALSE(tcp->shm_peer_failure());
  auto off = UcxContext::Create({.transports = kShmTransports, .shm_peer_failure = false});
  ASSERT_TRUE(off.has_value()) << off.error().ToString();
  EXPECT_FALSE(off->shm_peer_failure());
  // An explicit setting wins over the option.
  auto explicit_off =
      UcxContext::Create({.transports = kShmTransports, .config = {{"POSIX_ERROR_HANDLING", "n"}}});
  ASSERT_TRUE(explicit_off.has_value()) << explicit_off.error().ToString();
  EXPECT_FALSE(explicit_off->shm_peer_failure());
}

// The limit of the keepalive check over shared memory: it asks whether the peer *process* exists,
// so a client that destroyed its worker but lives on keeps its reply endpoint in the target until
// the process exits (docs/read-path.md, "Limits").
TEST_P(ShmPeerFailureTest, NotReleasedWhileTheProcessLives) {
  if (!GetParam()) GTEST_SKIP() << "without peer error handling nothing is ever released";
  ASSERT_NO_FATAL_FAILURE(RunClient());  // warm-up
  ProgressUntilMapsAtMost(0, 1s);
  const size_t baseline = MapsLines();
  pid_t pid = -1;
  ASSERT_NO_FATAL_FAILURE(SpawnClient(pid, 6s));
  // Wait for the client's segments to appear here, then for 2 s of 100 ms keepalive rounds while
  // the client (its UCX state destroyed) still lives.
  const auto appear_deadline = DeadlineIn(20s);
  while (MapsLines() <= baseline && Clock::now() < appear_deadline)
    std::this_thread::sleep_for(1ms);
  const size_t mapped = MapsLines();
  const size_t while_alive = ProgressUntilMapsAtMost(baseline, 2s);
  ASSERT_NO_FATAL_FAILURE(WaitClient(pid));
  const size_t after_exit = ProgressUntilMapsAtMost(baseline, 10s);
  std::cerr << "maps: baseline " << baseline << ", client connected " << mapped
            << ", 2 s later (client alive, UCX destroyed) " << while_alive << ", after exit "
            << after_exit << "\n";
  RecordProperty("maps_after_late_exit", static_cast<int>(after_exit));
  EXPECT_GT(mapped, baseline);
  EXPECT_GT(while_alive, baseline) << "released before the process exited: update the docs";
  // After such a late exit keepalive destroys the endpoint, but UCX 1.13 does not always unmap
  // the client's SysV segments then (seen in about 1 run of 3, more often under ASan; the posix
  // one goes), so whether they go is reported, not asserted; nothing new may appear. Clients that
  // exit right after closing (the usual case) leave nothing:
  // TargetReleasesEndpointsOfExitedClients.
  EXPECT_LE(after_exit, while_alive);
  if (after_exit > baseline)
    std::cerr << "NOTE: UCX kept " << after_exit - baseline
              << " mapping(s) of a client that exited long after destroying its worker (known "
                 "UCX 1.13 behaviour, docs/read-path.md \"Limits\")\n";
}

INSTANTIATE_TEST_SUITE_P(ShmErrorHandling, ShmPeerFailureTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Peer" : "NoPeer"; });

}  // namespace
}  // namespace swrdma::rdma
