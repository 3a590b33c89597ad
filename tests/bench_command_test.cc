// End to end: the built swrdma-agent serving generated volumes, its /v1/volumes/<vid>/sample
// endpoint, and the built `swrdma bench` reading them (rdma over tcp and shared memory, http,
// sampled or manifest fids), checking the JSON it prints. A corrupted needle must show up as
// errors, never as a successful read. No timing assertions.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/agent_http.h"
#include "protocol/file_id.h"
#include "protocol/messages.h"
#include "protocol/wire.h"
#include "tests/test_util.h"
#include "volume/volume_generator.h"

extern char** environ;

namespace swrdma {
namespace {

namespace fs = std::filesystem;
const std::string kSwrdma = SWRDMA_BINARY_DIR "/client/swrdma";
const std::string kAgent = SWRDMA_BINARY_DIR "/agent/swrdma-agent";
constexpr uint32_t kVid = 4;     // 600 needles, some gzipped, some deleted
constexpr uint32_t kBadVid = 8;  // 10 needles, one corrupted by the test

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

std::string ReadText(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A port nobody listens on right now (the agent binds it a moment later).
uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

class BenchCommandTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir("swrdma-bench-test");
    const fs::path vols = dir_->path() / "volumes";
    fs::create_directories(vols);
    GenerateOptions o;
    o.dir = vols;
    o.volume_id = kVid;
    o.needles = 600;
    o.min_size = 100;
    o.max_size = 9000;
    o.gzip_fraction = 0.25;
    o.delete_fraction = 0.2;
    o.seed = 11;
    auto r = GenerateVolume(o, {});
    ASSERT_TRUE(r) << r.error().ToString();
    std::ofstream manifest(dir_->path() / "manifest.tsv");
    manifest << "# fid size state encoding\n\n";
    for (const auto& n : r->needles) {
      manifest << FormatFileId(n.fid) << '\t' << n.size << '\t' << (n.deleted ? "deleted" : "live")
               << '\t' << (n.gzipped ? "gzip" : "plain") << '\n';
      (n.deleted ? deleted_ : live_).insert(FormatFileId(n.fid));
    }
    manifest << "9,01637037d6\n";  // another volume: skipped
    o.volume_id = kBadVid;
    o.needles = 10;
    o.gzip_fraction = o.delete_fraction = 0;
    auto bad = GenerateVolume(o, {});
    ASSERT_TRUE(bad) << bad.error().ToString();
    bad_needle_ = new GeneratedNeedle(bad->needles[3]);
    bad_dat_ = new fs::path(bad->dat);

    port_ = FreePort();
    const std::string log = (dir_->path() / "agent.log").string();
    std::vector<std::string> args = {kAgent,
                                     "--dir",
                                     vols.string(),
                                     "--index-dir",
                                     (dir_->path() / "index").string(),
                                     "--http",
                                     "127.0.0.1:" + std::to_string(port_),
                                     "--rescan-interval",
                                     "3600"};
    // The read port not at HTTP port + 1 (the default): that may be another test's port.
    args.insert(args.end(), {"--read-port", "127.0.0.1:0"});
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    ASSERT_EQ(posix_spawn(&agent_pid_, kAgent.c_str(), &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    client::AgentHttp http({"127.0.0.1", port_, ""}, std::chrono::seconds(2));
    for (int i = 0; i < 300; ++i) {
      auto ready = http.Request("GET", "/readyz");
      if (ready && ready->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "the agent did not become ready; its log:\n" << ReadText(log);
  }

  static void TearDownTestSuite() {
    if (agent_pid_ > 0) {
      ::kill(agent_pid_, SIGTERM);
      int status = 0;
      ::waitpid(agent_pid_, &status, 0);
    }
    delete bad_needle_;
    delete bad_dat_;
    delete dir_;
  }

  static std::string Url() { return "http://127.0.0.1:" + std::to_string(port_); }

  static RunResult Swrdma(const std::string& args) {
    RunResult r;
    const fs::path err = dir_->path() / "stderr.txt";
    const std::string cmd = kSwrdma + " " + args + " 2>" + err.string();
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
      r.out.append(buf, n);
    const int status = ::pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.err = ReadText(err);
    return r;
  }

  // Runs `swrdma bench --json` and returns the object, checking the fields every run has.
  static nlohmann::json BenchJson(const std::string& args, int expected_exit = 0) {
    RunResult r = Swrdma("bench --agent " + Url() + " --json " + args);
    EXPECT_EQ(r.exit_code, expected_exit) << r.out << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << "stdout is not one JSON object: " << r.out << r.err;
    if (!j.is_object()) return nlohmann::json::object();
    for (const char* k :
         {"mode", "transport", "ops", "ops_per_sec", "bytes_per_sec", "p50_us", "p90_us", "p99_us",
          "p999_us", "max_us", "errors", "crc_failures", "threads", "inflight", "seconds",
          "lookups", "lookup_cache_hits", "retries", "latency_of"}) {
      EXPECT_TRUE(j.contains(k)) << "no '" << k << "' in " << r.out;
    }
    const bool lookup = j["mode"] == "lookup";
    EXPECT_TRUE(j.contains(lookup ? "answer_bytes_mean" : "needle_bytes_mean")) << r.out;
    return j;
  }

  Result<SampleResponse> Sample(const std::string& query, int* status = nullptr) {
    client::AgentHttp http({"127.0.0.1", port_, ""}, std::chrono::seconds(5));
    auto reply = http.Request("GET", "/v1/volumes/" + query, {}, {}, kMsgpackMime);
    if (!reply) return Error(reply.error());
    if (status) *status = reply->status;
    auto tree = DecodeBody(reply->body, WireFormat::kMsgpack);
    if (!tree) return Error(tree.error());
    if (reply->status != 200) return Error(Code::kUnavailable, tree->dump());
    return SampleResponseFromJson(*tree);
  }

  static inline testing::TempDir* dir_ = nullptr;
  static inline pid_t agent_pid_ = -1;
  static inline uint16_t port_ = 0;
  static inline std::set<std::string> live_;
  static inline std::set<std::string> deleted_;
  static inline GeneratedNeedle* bad_needle_ = nullptr;
  static inline fs::path* bad_dat_ = nullptr;
};

TEST_F(BenchCommandTest, SampleEndpointReturnsDistinctLiveFids) {
  auto s = Sample(std::to_string(kVid) + "/sample?n=50&seed=3");
  ASSERT_TRUE(s) << s.error().ToString();
  EXPECT_EQ(s->volume_id, kVid);
  EXPECT_EQ(s->live_needles, live_.size());
  ASSERT_EQ(s->fids.size(), 50u);
  EXPECT_EQ(std::set<std::string>(s->fids.begin(), s->fids.end()).size(), 50u);
  for (const auto& f : s->fids)
    EXPECT_TRUE(live_.contains(f)) << f << " is not a live needle";
  auto again = Sample(std::to_string(kVid) + "/sample?n=50&seed=3");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->fids, s->fids);  // same seed, same sample
  auto all = Sample(std::to_string(kVid) + "/sample?n=10000");
  ASSERT_TRUE(all);
  EXPECT_EQ(std::set<std::string>(all->fids.begin(), all->fids.end()), live_);
}

TEST_F(BenchCommandTest, SampleEndpointRejectsBadRequests) {
  int status = 0;
  EXPECT_FALSE(Sample("77/sample?n=5", &status));
  EXPECT_EQ(status, 404);
  EXPECT_FALSE(Sample(std::to_string(kVid) + "/sample?n=0", &status));
  EXPECT_EQ(status, 400);
  EXPECT_FALSE(Sample(std::to_string(kVid) + "/sample?n=10001", &status));
  EXPECT_EQ(status, 400);
  EXPECT_FALSE(Sample(std::to_string(kVid) + "/sample?n=5&seed=x", &status));
  EXPECT_EQ(status, 400);
  EXPECT_FALSE(Sample("x/sample", &status));
  EXPECT_EQ(status, 400);
}

TEST_F(BenchCommandTest, RdmaOverTcpOneAtATimeAndWindows) {
  const std::string vol = " --volume " + std::to_string(kVid);
  // Checked reads: no lookups at all, with or without warm-up (the lookup cache is unused).
  auto j = BenchJson("--ops 200 --transports tcp --lookup-ttl-ms 600000" + vol);
  EXPECT_EQ(j["mode"], "rdma");
  EXPECT_EQ(j["transport"], "tcp");
  EXPECT_EQ(j["ops"], 200);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["crc_failures"], 0);
  EXPECT_EQ(j["latency_of"], "read");
  EXPECT_EQ(j["lookups"], 0);
  EXPECT_EQ(j["lookup_cache_hits"], 0);
  EXPECT_GT(j["bytes_per_sec"].get<double>(), 0);

  j = BenchJson("--ops 200 --inflight 16 --threads 2 --transports tcp --no-warmup" + vol);
  EXPECT_EQ(j["ops"], 200);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["latency_of"], "window");
  EXPECT_EQ(j["lookups"], 0);  // cold as well
}

TEST_F(BenchCommandTest, RdmaOverSharedMemory) {
  auto j = BenchJson("--ops 200 --inflight 4 --transports posix,sysv,cma --volume " +
                     std::to_string(kVid));
  EXPECT_EQ(j["ops"], 200);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["transport"].get<std::string>().find("tcp"), std::string::npos) << j.dump();
}

TEST_F(BenchCommandTest, HttpFallback) {
  auto j = BenchJson("--ops 200 --mode http --inflight 4 --volume " + std::to_string(kVid));
  EXPECT_EQ(j["mode"], "http");
  EXPECT_EQ(j["transport"], "http");
  EXPECT_EQ(j["connections"], 4);
  EXPECT_EQ(j["ops"], 200);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["crc_failures"], 0);
}

// Batched lookups: every request asks 1,000 random live fids, every answer is checked; ops are
// fids, latencies are per request.
TEST_F(BenchCommandTest, BatchedLookups) {
  auto j = BenchJson("--ops 20 --mode lookup --batch 1000 --volume " + std::to_string(kVid));
  EXPECT_EQ(j["mode"], "lookup");
  EXPECT_EQ(j["batch"], 1000);
  EXPECT_EQ(j["requests"], 20);
  EXPECT_EQ(j["ops"], 20'000);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["connections"], 1);
  EXPECT_EQ(j["latency_of"], "request");
  EXPECT_GT(j["p50_us"].get<double>(), 0.0);
  EXPECT_GT(j["ops_per_sec"].get<double>(), j["requests_per_sec"].get<double>());
  EXPECT_GT(j["answer_bytes_mean"].get<double>(), 1000.0);  // a result per fid
  j = BenchJson("--ops 20 --mode lookup --batch 1000 --inflight 2 --volume " +
                std::to_string(kVid));
  EXPECT_EQ(j["requests"], 20);
  EXPECT_EQ(j["connections"], 2);
  EXPECT_EQ(j["errors"], 0);
}

// A batch beyond the agent's --max-lookup-batch (10,000 by default) stops the run with the
// agent's reason and the limit, before any timing.
TEST_F(BenchCommandTest, LookupBatchBeyondTheAgentsLimitIsRefused) {
  RunResult r = Swrdma("bench --agent " + Url() + " --mode lookup --batch 10001 --ops 2 --volume " +
                       std::to_string(kVid));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("HTTP 400"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("at most 10000"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--max-lookup-batch"), std::string::npos) << r.err;
  r = Swrdma("bench --agent " + Url() + " --mode lookup --batch 0 --ops 2 --volume 4");
  EXPECT_NE(r.exit_code, 0);  // CLI11: out of range
}

TEST_F(BenchCommandTest, ManifestGivesTheLiveFidsOfTheVolume) {
  const std::string manifest = (dir_->path() / "manifest.tsv").string();
  auto j = BenchJson("--ops 200 --fids " + manifest + " --volume " + std::to_string(kVid));
  EXPECT_EQ(j["fid_source"], "file");
  EXPECT_EQ(j["fids"], live_.size());  // deleted lines, comments and volume 9 skipped
  EXPECT_EQ(j["errors"], 0);
  j = BenchJson("--seconds 0.3 --mode http --fids " + manifest + " --volume " +
                std::to_string(kVid));
  EXPECT_EQ(j["errors"], 0);
  EXPECT_GT(j["ops"].get<int>(), 0);
}

TEST_F(BenchCommandTest, UsageAndAgentErrors) {
  RunResult r = Swrdma("bench --agent " + Url() + " --volume 77 --ops 10");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("volume 77"), std::string::npos) << r.err;
  r = Swrdma("bench --agent " + Url() + " --volume 4 --ops 10 --seconds 1");
  EXPECT_NE(r.exit_code, 0);  // CLI11's own exit code for a parse error
  EXPECT_NE(r.err.find("excludes"), std::string::npos) << r.err;
  r = Swrdma("bench --agent " + Url() + " --volume 4 --fids /nonexistent/list --ops 10");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/list"), std::string::npos) << r.err;
}

// Runs last in this file's order: it damages volume kBadVid (nothing else reads it).
TEST_F(BenchCommandTest, CorruptedNeedleIsAnErrorInEveryMode) {
  const std::string fid = FormatFileId(bad_needle_->fid);
  const fs::path list = dir_->path() / "bad.txt";
  std::ofstream(list) << fid << '\n';
  // Flip a data byte: header (16) + data size (4) + 1. The agent maps the file shared, so the
  // bytes it serves change at once.
  std::fstream f(*bad_dat_, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(bad_needle_->offset + 21));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(bad_needle_->offset + 21));
  f.put(static_cast<char>(c ^ 0x5a));
  f.close();
  const std::string common =
      " --ops 20 --no-warmup --fids " + list.string() + " --volume " + std::to_string(kBadVid);
  auto j = BenchJson("--transports tcp" + common, /*expected_exit=*/1);
  EXPECT_EQ(j["ops"], 0);
  EXPECT_EQ(j["errors"], 20);
  EXPECT_GE(j["crc_failures"].get<int>(), 20);
  EXPECT_NE(j["first_error"].get<std::string>().find(fid), std::string::npos) << j.dump();
  j = BenchJson("--mode http" + common, /*expected_exit=*/1);
  EXPECT_EQ(j["ops"], 0);
  EXPECT_EQ(j["errors"], 20);  // the agent checks the CRC and answers 500
}

}  // namespace
}  // namespace swrdma
