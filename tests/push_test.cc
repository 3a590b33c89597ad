// Push over the TCP read port (agent/record_pusher.h, agent/tcp_read_server.h,
// client/tcp_checked_reader.h) with an in-process pusher that plays the NIC: the landing
// buffer's address is this process's memory, so "RDMA WRITE" is a memcpy. What the protocol
// and both ends must get right runs here; the real RDMA WRITEs run in tests/vm (Soft-RoCE):
// - every record, landed or inline, is byte-exact, and landed ones follow the offset rule;
// - records that do not fit the landing, and every record of a failed push, come inline;
// - an agent that claims a landing the client did not offer, or one past its end, is refused.
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "agent/record_pusher.h"
#include "client/tcp_checked_reader.h"
#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "protocol/needle.h"
#include "protocol/read_messages.h"
#include "rdma/buffer_pool.h"
#include "tests/checked_arrivals.h"
#include "tests/generated_volume.h"
#include "tests/in_process_agent.h"
#include "tests/test_util.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::array<uint8_t, kPushNonceBytes> kNonce = {1, 2,  3,  4,  5,  6,  7,  8,
                                                         9, 10, 11, 12, 13, 14, 15, 16};
constexpr uint32_t kRkey = 0x04030201;

// Plain memory whose "rkey" is kRkey: what a landing pool needs to describe its buffers.
class KeyedRegistration final : public rdma::Registration {
 public:
  KeyedRegistration() : Registration(nullptr) {}
  Result<std::vector<uint8_t>> PackKey() const override {
    return std::vector<uint8_t>{0x01, 0x02, 0x03, 0x04};
  }
};
class KeyedRegistrar final : public rdma::Registrar {
 public:
  Result<std::unique_ptr<rdma::Registration>> Register(void*, size_t,
                                                       rdma::RegionAccess) const override {
    return std::unique_ptr<rdma::Registration>(new KeyedRegistration());
  }
};

// The NIC, in-process: checks what a verbs exporter would be given and copies.
class MemcpyPusher final : public agent::RecordPusher {
 public:
  std::optional<agent::PushWrite> Source(const agent::ExportedVolume&,
                                         std::span<const uint8_t> record) const override {
    agent::PushWrite w;
    w.source = record;
    return w;
  }
  void Push(const PushLanding& landing, std::vector<agent::PushWrite> writes,
            PushDone done) override {
    ++calls;
    if (hold) {  // a client whose NIC never acknowledges: the push ends when Release says
      std::lock_guard lock(mu);
      held.push_back(std::move(done));
      return;
    }
    done(Copy(landing, writes));
  }
  Status Copy(const PushLanding& landing, std::span<const agent::PushWrite> writes) {
    if (landing.nonce != kNonce || landing.rkey != kRkey) {
      return Status(Code::kNotFound, "no connection with that nonce and key");
    }
    if (fail) return Status(Code::kRdmaTransport, "the QP failed (simulated)");
    uint64_t end = 0;
    for (const auto& w : writes) {
      // What the server must never ask: overlapping, unaligned or out-of-landing writes.
      EXPECT_EQ(w.offset, NextLandingOffset(end));
      EXPECT_LE(w.offset + w.source.size(), landing.length);
      std::memcpy(reinterpret_cast<void*>(landing.address + w.offset), w.source.data(),
                  w.source.size());
      end = w.offset + w.source.size();
      ++written;
    }
    return Status::Ok();
  }
  void StopPushes(std::chrono::milliseconds) override {
    Release(Status(Code::kCancelled, "the read server is stopping (test)"));
  }
  // Ends every held push with `status` (from this thread, as the exporter's push thread would).
  size_t Release(const Status& status) {
    std::vector<PushDone> ending;
    {
      std::lock_guard lock(mu);
      ending.swap(held);
    }
    for (auto& d : ending)
      d(status);
    return ending.size();
  }
  size_t Held() {
    std::lock_guard lock(mu);
    return held.size();
  }
  std::atomic<bool> fail{false};
  std::atomic<bool> hold{false};
  std::atomic<uint64_t> calls{0}, written{0};
  std::mutex mu;
  std::vector<PushDone> held;
};

struct PushReader {
  client::PlainRegistrar plain;
  KeyedRegistrar keyed;
  std::optional<rdma::BufferPool> pool, landing;
  std::unique_ptr<client::TcpCheckedReader> reader;

  explicit PushReader(uint16_t port) {
    pool.emplace(std::move(*rdma::BufferPool::Create(plain)));
    rdma::BufferPoolOptions lo;
    lo.access = rdma::RegionAccess::kRemoteReadWrite;
    landing.emplace(std::move(*rdma::BufferPool::Create(keyed, lo)));
    auto r = client::TcpCheckedReader::Connect("127.0.0.1", port, *pool, 10s);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    if (r) reader = std::move(*r);
    if (reader) reader->OfferLanding(*landing, kNonce);
  }

  std::vector<client::CheckedArrival> ReadAll(const std::vector<std::string>& fids, size_t batch) {
    return testing::ReadAllChecked(*reader, fids, {}, batch);
  }
};

struct Fixture {
  testing::TempDir tmp;
  testing::ExpectedNeedles expected;
  std::vector<std::string> fids;
  MemcpyPusher pusher;
  std::unique_ptr<testing::InProcessAgent> agent;

  Fixture() {
    fs::create_directories(tmp / "vols");
    testing::GenerateExpected({.dir = tmp / "vols",
                               .volume_id = 5,
                               .needles = 200,
                               .min_size = 1,
                               .max_size = 96 * 1024,
                               .gzip_fraction = 0.3,
                               .delete_fraction = 0.1,
                               .seed = 21},
                              expected);
    testing::GenerateExpected({.dir = tmp / "vols",
                               .volume_id = 6,
                               .needles = 6,
                               .min_size = 1 << 20,
                               .max_size = 3 << 20,
                               .seed = 22},
                              expected);
    testing::InProcessAgentOptions o;
    o.tcp_read_options.pusher = &pusher;
    agent = std::make_unique<testing::InProcessAgent>(std::vector<fs::path>{tmp / "vols"},
                                                      tmp / "index", o);
    for (const auto& [fid, e] : expected)
      fids.push_back(fid);
  }

  // Every live needle byte-exact, every deleted one refused; how many arrived landed.
  size_t Check(const std::vector<client::CheckedArrival>& arrivals, size_t* inline_ok) {
    EXPECT_EQ(arrivals.size(), fids.size());
    size_t landed = 0;
    *inline_ok = 0;
    for (const auto& a : arrivals) {
      EXPECT_TRUE(a.error.ok()) << fids.at(a.tag) << ": " << a.error.ToString();
      const auto& e = expected.at(fids.at(a.tag));
      if (e.deleted) {
        EXPECT_EQ(a.header.status, ReadStatus::kDeleted);
        EXPECT_FALSE(a.header.landed);
        continue;
      }
      EXPECT_EQ(a.header.status, ReadStatus::kOk) << a.reason;
      auto data = testing::VerifyArrival(a, fids.at(a.tag));
      EXPECT_TRUE(data.has_value()) << fids.at(a.tag) << ": " << data.error().ToString();
      if (data) {
        EXPECT_EQ(*data, e.data) << fids.at(a.tag);
      }
      a.header.landed ? ++landed : ++*inline_ok;
    }
    return landed;
  }
};

TEST(PushTest, LandedAndInlineRecordsAreByteExact) {
  Fixture f;
  PushReader r(f.agent->tcp_read_port());
  ASSERT_TRUE(r.reader);
  for (size_t batch : {size_t{1}, size_t{16}, size_t{256}}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    size_t inline_ok = 0;
    const size_t landed = f.Check(r.ReadAll(f.fids, batch), &inline_ok);
    EXPECT_GT(landed, 100u) << "most records should land (" << inline_ok << " came inline)";
    // The first landings are sized for 4 KiB records; the 1-3 MiB ones do not fit in a batch of
    // 16 (16 MiB at most) until the reader has seen one: some come inline.
    if (batch == 1) {
      EXPECT_GT(inline_ok, 0u) << "a record larger than the landing came inline";
    }
  }
  const auto stats = f.agent->tcp_read_server()->stats();
  EXPECT_EQ(stats.pushed, r.reader->landed());
  EXPECT_EQ(stats.pushed, f.pusher.written.load());
  EXPECT_GT(stats.replies_ok, stats.pushed);
  EXPECT_EQ(stats.push_failures, 0u);
  EXPECT_EQ(r.landing->stats().buffers_out, 0u) << "every landing went back to its pool";
}

TEST(PushTest, AFailedPushSendsEveryRecordInline) {
  Fixture f;
  f.pusher.fail = true;
  PushReader r(f.agent->tcp_read_port());
  ASSERT_TRUE(r.reader);
  size_t inline_ok = 0;
  EXPECT_EQ(f.Check(r.ReadAll(f.fids, 32), &inline_ok), 0u);
  EXPECT_GT(inline_ok, 150u);
  const auto stats = f.agent->tcp_read_server()->stats();
  EXPECT_GT(stats.push_failures, 0u);
  EXPECT_EQ(stats.pushed, 0u);
  EXPECT_GT(f.pusher.calls.load(), 0u);
}

// A push whose client never acknowledges (gone, or hostile) holds no thread of the read
// server: with more such pushes pending than the server has threads, another client still
// reads everything; once the pushes time out, their records come inline.
TEST(PushTest, APushThatNeverCompletesHoldsUpNoOtherClient) {
  Fixture f;
  f.pusher.hold = true;
  std::vector<std::unique_ptr<PushReader>> stuck;
  std::vector<std::future<std::vector<client::CheckedArrival>>> waiting;
  const std::vector<std::string> some(f.fids.begin(), f.fids.begin() + 8);
  for (int i = 0; i < 4; ++i) {  // the in-process agent's read server runs 2 threads
    stuck.push_back(std::make_unique<PushReader>(f.agent->tcp_read_port()));
    ASSERT_TRUE(stuck.back()->reader);
    PushReader* r = stuck.back().get();
    waiting.push_back(std::async(std::launch::async, [r, &some] { return r->ReadAll(some, 8); }));
  }
  for (int i = 0; i < 500 && f.pusher.Held() < 4; ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(f.pusher.Held(), 4u) << "every stuck reader's push should be pending";

  PushReader plain_pools(f.agent->tcp_read_port());
  auto plain = client::TcpCheckedReader::Connect("127.0.0.1", f.agent->tcp_read_port(),
                                                 *plain_pools.pool, 10s);
  ASSERT_TRUE(plain.has_value());
  size_t inline_ok = 0;
  EXPECT_EQ(f.Check(testing::ReadAllChecked(**plain, f.fids, {}, 32), &inline_ok), 0u);
  EXPECT_GT(inline_ok, 150u) << "a client offering no landing reads while pushes are pending";

  // The pushes time out (as the exporter ends them): every stuck reader gets its records inline.
  EXPECT_EQ(f.pusher.Release(Status(Code::kTimeout, "push: no completion (test)")), 4u);
  for (auto& w : waiting) {
    const auto arrivals = w.get();
    ASSERT_EQ(arrivals.size(), some.size());
    for (const auto& a : arrivals) {
      EXPECT_TRUE(a.error.ok()) << a.error.ToString();
      EXPECT_FALSE(a.header.landed);
    }
  }
  EXPECT_EQ(f.agent->tcp_read_server()->stats().push_failures, 4u);
}

// Stopping the read server ends the pushes still in flight (StopPushes) before its threads go:
// none of their callbacks outlives the server (under ASan a late one is a use after free).
TEST(PushTest, StoppingTheServerEndsPushesInFlight) {
  Fixture f;
  f.pusher.hold = true;
  PushReader stuck(f.agent->tcp_read_port());
  ASSERT_TRUE(stuck.reader);
  const std::vector<std::string> some(f.fids.begin(), f.fids.begin() + 4);
  auto waiting = std::async(std::launch::async, [&] { return stuck.ReadAll(some, 4); });
  for (int i = 0; i < 500 && f.pusher.Held() < 1; ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(f.pusher.Held(), 1u);
  // The reader's one complaint: the agent closed its connection with the replies outstanding.
  EXPECT_NONFATAL_FAILURE_ON_ALL_THREADS(
      {
        f.agent.reset();  // stops its read server
        (void)waiting.get();
      },
      "closed the checked-read connection");
  EXPECT_EQ(f.pusher.Held(), 0u) << "a push outlived the server's Stop";
}

TEST(PushTest, WithoutAnOfferNothingLands) {
  Fixture f;
  PushReader r(f.agent->tcp_read_port());
  ASSERT_TRUE(r.reader);
  // A reader that offers nothing: the same server sends everything inline.
  auto plain =
      client::TcpCheckedReader::Connect("127.0.0.1", f.agent->tcp_read_port(), *r.pool, 10s);
  ASSERT_TRUE(plain.has_value());
  r.reader = std::move(*plain);
  size_t inline_ok = 0;
  EXPECT_EQ(f.Check(r.ReadAll(f.fids, 64), &inline_ok), 0u);
  EXPECT_EQ(f.pusher.calls.load(), 0u);
}

// The client trusts an agent to send the bytes it asks for, not to be well-formed: a "landed"
// record it offered no landing for, or one past the landing's end, fails the connection.
struct LyingAgent {
  client::PlainRegistrar plain;
  KeyedRegistrar keyed;
  std::optional<rdma::BufferPool> pool, landing;
  std::unique_ptr<client::TcpCheckedReader> reader;
  int agent_fd = -1;

  explicit LyingAgent(bool offer) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    agent_fd = fds[1];
    pool.emplace(std::move(*rdma::BufferPool::Create(plain)));
    rdma::BufferPoolOptions lo;
    lo.access = rdma::RegionAccess::kRemoteReadWrite;
    landing.emplace(std::move(*rdma::BufferPool::Create(keyed, lo)));
    reader = client::TcpCheckedReader::Adopt(fds[0], *pool);
    if (offer) reader->OfferLanding(*landing, kNonce);
    std::vector<ReadRequestEntry> entries = {{"3,01637037d6", ""}, {"3,02637037d6", ""}};
    std::vector<size_t> tags = {0, 1};
    EXPECT_TRUE(reader->Send(entries, tags, false).ok());
  }
  ~LyingAgent() { ::close(agent_fd); }
  void SendLanded(uint32_t index, uint64_t length) {
    std::array<uint8_t, kReadReplyHeaderBytes> header{};
    EncodeReadReplyHeader({.status = ReadStatus::kOk,
                           .needle_version = 3,
                           .request_id = 1,
                           .index = index,
                           .volume_id = 3,
                           .generation = 1,
                           .length = length,
                           .needle_size = static_cast<uint32_t>(length),
                           .landed = true},
                          header);
    EXPECT_EQ(::send(agent_fd, header.data(), header.size(), 0),
              static_cast<ssize_t>(header.size()));
  }
  Status Poll(std::vector<client::CheckedArrival>& out) {
    Status s;
    while (reader->outstanding() > 0 && (s = reader->Poll(out, rdma::DeadlineIn(20s))).ok()) {
    }
    return s;
  }
};

TEST(PushTest, ALandingNeverOfferedIsRefused) {
  LyingAgent a(/*offer=*/false);
  a.SendLanded(0, 100);
  std::vector<client::CheckedArrival> out;
  Status s = a.Poll(out);
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("offered none"), std::string::npos) << s.ToString();
  EXPECT_TRUE(out.empty()) << "nothing was handed on (the round fails what is left)";
  EXPECT_FALSE(a.reader->connected()) << "the connection to a lying agent is closed";
}

TEST(PushTest, ALandedRecordPastTheLandingIsRefused) {
  LyingAgent a(/*offer=*/true);
  // The landing offered for 2 fids is 256 KiB (the least offered): a first record of 250 KiB
  // fits, a second of 8 KiB would end past it.
  ASSERT_EQ(rdma::BufferPool::SizeClass(256 << 10), size_t{256} << 10);
  a.SendLanded(0, 250 << 10);
  a.SendLanded(1, 8 << 10);
  std::vector<client::CheckedArrival> out;
  Status s = a.Poll(out);
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  ASSERT_EQ(out.size(), 1u) << "only the record that fit was handed on";
  EXPECT_TRUE(out[0].error.ok()) << "the first record fit: " << out[0].error.ToString();
  EXPECT_EQ(out[0].header.length, 250u << 10);
  EXPECT_EQ(out[0].tag, 0u);
  EXPECT_FALSE(a.reader->connected());
}

}  // namespace
}  // namespace swrdma
