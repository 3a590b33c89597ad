// Checked reads over the agent's TCP read port (agent/tcp_read_server.h,
// client/tcp_checked_reader.h) against an in-process agent: every live needle byte-exact in
// batches (records over 1 MiB included), per-fid refusals and tokens; frames that do not follow
// the protocol, peers that connect and never send or stop halfway, a flood of connections
// beyond the limit and a truncated volume file cost the agent a connection each and nothing
// else: it stays up and a legitimate reader is still served. The Client takes this path when
// asked for tcp only.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "client/client.h"
#include "client/tcp_checked_reader.h"
#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "protocol/jwt.h"
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

struct Reader {
  client::PlainRegistrar registrar;
  std::optional<rdma::BufferPool> pool;
  std::unique_ptr<client::TcpCheckedReader> reader;

  static std::unique_ptr<Reader> Connect(uint16_t port) {
    auto r = std::make_unique<Reader>();
    auto pool = rdma::BufferPool::Create(r->registrar);
    EXPECT_TRUE(pool.has_value());
    if (!pool) return nullptr;
    r->pool.emplace(std::move(*pool));
    auto reader = client::TcpCheckedReader::Connect("127.0.0.1", port, *r->pool, 10s);
    EXPECT_TRUE(reader.has_value()) << reader.error().ToString();
    if (!reader) return nullptr;
    r->reader = std::move(*reader);
    return r;
  }

  // Sends `fids` in requests of `batch`, all at once, and collects every answer; the first
  // transport failure is returned in `failure` (and ends the collection).
  std::vector<client::CheckedArrival> ReadAll(const std::vector<std::string>& fids,
                                              const std::vector<std::string>& tokens = {},
                                              size_t batch = 64, Status* failure = nullptr) {
    return testing::ReadAllChecked(*reader, fids, tokens, batch, std::chrono::seconds(30), failure);
  }
};

// A raw loopback connection to the read port; reads give up after 20 s (a bound, not a
// measurement: every wait below ends much earlier when the agent behaves).
int RawConnect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{.tv_sec = 20, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// True when the agent closed the connection (EOF or reset) before sending anything.
bool ClosedWithoutAnswer(int fd) {
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

std::vector<uint8_t> Frame(std::span<const uint8_t> body, uint32_t length) {
  std::vector<uint8_t> f(4 + body.size());
  for (int i = 0; i < 4; ++i)
    f[i] = static_cast<uint8_t>(length >> (8 * i));
  std::copy(body.begin(), body.end(), f.begin() + 4);
  return f;
}

// Waits (bounded) until `done` holds for the agent's counters.
template <class Pred>
bool EventuallyStats(const agent::TcpReadServer& s, Pred done) {
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!done(s.stats())) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST(TcpReadTest, EveryNeedleByteExactAndEveryRefusalPerFid) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  testing::GenerateExpected({.dir = tmp / "vols",
                             .volume_id = 3,
                             .needles = 300,
                             .min_size = 1,
                             .max_size = 64 * 1024,
                             .gzip_fraction = 0.3,
                             .delete_fraction = 0.1,
                             .seed = 5},
                            expected);
  testing::GenerateExpected({.dir = tmp / "vols",
                             .volume_id = 4,
                             .needles = 12,
                             .min_size = 1 << 20,
                             .max_size = 5 << 20,
                             .version = NeedleVersion::kV2,
                             .legacy_crc = true,
                             .seed = 6},
                            expected);
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  ASSERT_EQ(agent.report().exported, 2u);
  ASSERT_NE(agent.tcp_read_port(), 0);
  auto r = Reader::Connect(agent.tcp_read_port());
  ASSERT_TRUE(r);

  std::vector<std::string> fids;
  for (const auto& [fid, e] : expected)
    fids.push_back(fid);
  fids.push_back("not-a-fid");
  fids.push_back("77,0100000000deadbeef");  // no such volume
  fids.push_back("3,ffffff00000000");       // no such needle
  for (size_t batch : {size_t{1}, size_t{7}, size_t{64}, size_t{4096}}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    auto arrivals = r->ReadAll(fids, {}, batch);
    ASSERT_EQ(arrivals.size(), fids.size());
    std::map<size_t, const client::CheckedArrival*> by_tag;
    for (const auto& a : arrivals) {
      ASSERT_TRUE(by_tag.emplace(a.tag, &a).second) << "answered twice: " << fids[a.tag];
      ASSERT_TRUE(a.error.ok()) << fids[a.tag] << ": " << a.error.ToString();
    }
    size_t ok = 0, deleted = 0, big = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      const auto& a = *by_tag.at(i);
      const auto& e = expected.at(fids[i]);
      if (e.deleted) {
        EXPECT_EQ(a.header.status, ReadStatus::kDeleted) << fids[i];
        EXPECT_FALSE(a.record) << "a deleted needle's bytes were sent";
        ++deleted;
        continue;
      }
      ASSERT_EQ(a.header.status, ReadStatus::kOk) << fids[i] << ": " << a.reason;
      auto data = testing::VerifyArrival(a, fids[i]);
      ASSERT_TRUE(data.has_value()) << fids[i] << ": " << data.error().ToString();
      EXPECT_EQ(*data, e.data) << fids[i];
      big += e.data.size() > (1u << 20);
      ++ok;
    }
    EXPECT_GT(ok, 250u);
    EXPECT_GT(deleted, 10u);
    EXPECT_GE(big, 10u);
    EXPECT_EQ(by_tag.at(expected.size())->header.status, ReadStatus::kBadFid);
    EXPECT_EQ(by_tag.at(expected.size() + 1)->header.status, ReadStatus::kUnknownVolume);
    EXPECT_EQ(by_tag.at(expected.size() + 2)->header.status, ReadStatus::kNotFound);
  }
  const auto stats = agent.tcp_read_server()->stats();
  EXPECT_EQ(stats.malformed, 0u);
  EXPECT_EQ(stats.send_failures, 0u);
  EXPECT_EQ(stats.connections_total, 1u);
  EXPECT_EQ(agent.read_server().stats().requests, 0u) << "the UCX path was used";
}

TEST(TcpReadTest, TokensAreCheckedPerFid) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  testing::GenerateExpected({.dir = tmp / "vols", .volume_id = 5, .needles = 20, .seed = 8},
                            expected);
  const std::string key = "tcp-read-test-key";
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index", {.jwt_read_key = key});
  auto r = Reader::Connect(agent.tcp_read_port());
  ASSERT_TRUE(r);
  std::vector<std::string> fids, tokens;
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  for (const auto& [fid, e] : expected) {
    if (e.deleted) continue;
    const size_t k = fids.size() % 5;
    fids.push_back(fid);
    tokens.push_back(k == 0   ? SignReadJwt(fid, key, now + 60)
                     : k == 1 ? std::string()
                     : k == 2 ? SignReadJwt(fid + "0", key, now + 60)
                     : k == 3 ? SignReadJwt(fid, key, now - 60)
                              : SignReadJwt(fid, "another key", now + 60));
  }
  auto arrivals = r->ReadAll(fids, tokens, 7);
  ASSERT_EQ(arrivals.size(), fids.size());
  for (const auto& a : arrivals) {
    if (a.tag % 5 == 0) {
      ASSERT_EQ(a.header.status, ReadStatus::kOk) << fids[a.tag] << ": " << a.reason;
      auto data = testing::VerifyArrival(a, fids[a.tag]);
      ASSERT_TRUE(data.has_value()) << data.error().ToString();
      EXPECT_EQ(*data, expected.at(fids[a.tag]).data);
    } else {
      EXPECT_EQ(a.header.status, ReadStatus::kDenied) << "token case " << a.tag % 5;
      EXPECT_EQ(a.reason, "wrong jwt");
      EXPECT_FALSE(a.record);
    }
  }
  EXPECT_EQ(agent.tcp_read_server()->stats().denied, fids.size() - (fids.size() + 4) / 5);
}

// Frames that do not follow the protocol: each closes its own connection without an answer
// (counted), and a reader on another connection is served throughout.
TEST(TcpReadTest, MalformedFramesCloseTheirConnectionOnly) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  testing::GenerateExpected({.dir = tmp / "vols", .volume_id = 6, .needles = 10, .seed = 9},
                            expected);
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  auto r = Reader::Connect(agent.tcp_read_port());
  ASSERT_TRUE(r);
  const std::string fid = expected.begin()->first;
  ReadRequest good{.request_id = 9, .entries = {{fid, ""}}};
  const std::vector<uint8_t> valid = *EncodeReadRequest(good);
  auto changed = [&](size_t at, uint8_t value) {
    auto v = valid;
    v[at] = value;
    return Frame(v, static_cast<uint32_t>(v.size()));
  };
  const std::vector<std::vector<uint8_t>> garbage = {
      Frame({}, 0),            // empty request
      Frame({}, 0xffffffffu),  // far over the limit
      Frame({}, static_cast<uint32_t>(kMaxReadRequestBytes + 1)),
      Frame(std::vector<uint8_t>(19, 0), 19),  // under the fixed header
      changed(0, valid[0] ^ 1),                // magic
      changed(16, 0xff),                       // count 255 for one entry
      changed(20, 200),                        // fid length past the end
      [&] {
        auto v = valid;
        v.push_back(0);  // trailing byte
        return Frame(v, static_cast<uint32_t>(v.size()));
      }(),
      std::vector<uint8_t>(64, 0x41),  // not a frame at all: "AAAA" is 1.1 GB
  };
  for (const auto& g : garbage) {
    const int fd = RawConnect(agent.tcp_read_port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, g.data(), g.size(), MSG_NOSIGNAL), static_cast<ssize_t>(g.size()));
    EXPECT_TRUE(ClosedWithoutAnswer(fd)) << "garbage of " << g.size() << " bytes was answered";
    ::close(fd);
    auto arrivals = r->ReadAll({fid});
    ASSERT_EQ(arrivals.size(), 1u);
    EXPECT_EQ(arrivals[0].header.status,
              expected.begin()->second.deleted ? ReadStatus::kDeleted : ReadStatus::kOk);
  }
  // A frame cut off by its peer closing: no answer, no count as malformed, no harm.
  {
    const int fd = RawConnect(agent.tcp_read_port());
    auto f = Frame(valid, static_cast<uint32_t>(valid.size()));
    ASSERT_EQ(::send(fd, f.data(), f.size() - 3, MSG_NOSIGNAL), static_cast<ssize_t>(f.size() - 3));
    ::close(fd);
  }
  ASSERT_TRUE(EventuallyStats(
      *agent.tcp_read_server(),
      [&](const auto& s) { return s.malformed == garbage.size() && s.connections_open == 1; }))
      << "malformed " << agent.tcp_read_server()->stats().malformed;
  auto arrivals = r->ReadAll({fid});
  ASSERT_EQ(arrivals.size(), 1u);
  EXPECT_EQ(agent.tcp_read_server()->stats().requests, garbage.size() + 1);
}

// A peer that connects and never sends, and one that stops halfway through a request: both are
// closed by the agent once their time is up (short limits here), counted as timeouts.
TEST(TcpReadTest, SilentAndSlowPeersAreClosed) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  testing::GenerateExpected({.dir = tmp / "vols", .volume_id = 7, .needles = 5, .seed = 10},
                            expected);
  testing::InProcessAgentOptions o;
  o.tcp_read_options.idle_timeout = 200ms;
  o.tcp_read_options.read_timeout = 200ms;
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index", o);
  const int silent = RawConnect(agent.tcp_read_port());
  ASSERT_GE(silent, 0);
  const int slow = RawConnect(agent.tcp_read_port());
  ASSERT_GE(slow, 0);
  ReadRequest good{.request_id = 1, .entries = {{expected.begin()->first, ""}}};
  const auto valid = *EncodeReadRequest(good);
  const auto f = Frame(valid, static_cast<uint32_t>(valid.size()));
  ASSERT_EQ(::send(slow, f.data(), 10, MSG_NOSIGNAL), 10);
  EXPECT_TRUE(ClosedWithoutAnswer(silent));
  EXPECT_TRUE(ClosedWithoutAnswer(slow));
  ::close(silent);
  ::close(slow);
  EXPECT_TRUE(
      EventuallyStats(*agent.tcp_read_server(), [](const auto& s) { return s.timeouts >= 2; }));
  // A reader that does its work in time is unaffected.
  auto r = Reader::Connect(agent.tcp_read_port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ReadAll({expected.begin()->first}).size(), 1u);
}

// More connections than the limit: the extra ones are closed at once and counted; the reader
// that holds a slot is served throughout, and once the flood is gone a new reader is as well.
TEST(TcpReadTest, ConnectionFloodBeyondTheLimit) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  testing::GenerateExpected({.dir = tmp / "vols", .volume_id = 8, .needles = 20, .seed = 11},
                            expected);
  testing::InProcessAgentOptions o;
  o.tcp_read_options.max_connections = 8;
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index", o);
  auto r = Reader::Connect(agent.tcp_read_port());
  ASSERT_TRUE(r);
  std::vector<std::string> fids;
  for (const auto& [fid, e] : expected)
    fids.push_back(fid);
  ASSERT_EQ(r->ReadAll(fids).size(), fids.size());
  constexpr int kFlood = 200;
  std::vector<int> flood;
  for (int i = 0; i < kFlood; ++i) {
    const int fd = RawConnect(agent.tcp_read_port());
    ASSERT_GE(fd, 0) << "connect " << i;
    flood.push_back(fd);
  }
  ASSERT_TRUE(EventuallyStats(*agent.tcp_read_server(), [&](const auto& s) {
    return s.connections_total + s.connections_refused == kFlood + 1;
  }));
  const auto s = agent.tcp_read_server()->stats();
  EXPECT_EQ(s.connections_total, 8u);
  EXPECT_EQ(s.connections_refused, static_cast<uint64_t>(kFlood - 7));
  auto again = r->ReadAll(fids);
  ASSERT_EQ(again.size(), fids.size());
  for (const auto& a : again)
    EXPECT_TRUE(a.error.ok());
  for (int fd : flood)
    ::close(fd);
  ASSERT_TRUE(EventuallyStats(*agent.tcp_read_server(),
                              [](const auto& st) { return st.connections_open == 1; }));
  auto fresh = Reader::Connect(agent.tcp_read_port());
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->ReadAll(fids).size(), fids.size());
}

// The volume file shrinks under the agent (before any rescan): records past the new end lie in
// a mapping that no longer has pages. Sending them fails in the kernel (EFAULT), not with a
// SIGBUS: that connection ends, the agent stays up and serves what is still there.
TEST(TcpReadTest, TruncatedVolumeDoesNotKillTheAgent) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  testing::GenerateExpected({.dir = tmp / "vols",
                             .volume_id = 9,
                             .needles = 16,
                             .min_size = 256 << 10,
                             .max_size = 512 << 10,
                             .seed = 12},
                            expected);
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  fs::path dat;
  for (const auto& e : fs::directory_iterator(tmp / "vols"))
    if (e.path().extension() == ".dat") dat = e.path();
  ASSERT_FALSE(dat.empty());
  const auto size = fs::file_size(dat);
  fs::resize_file(dat, size / 2);
  std::vector<std::string> fids;
  for (const auto& [fid, e] : expected)
    if (!e.deleted) fids.push_back(fid);
  size_t failed = 0;
  for (const auto& fid : fids) {
    auto r = Reader::Connect(agent.tcp_read_port());
    ASSERT_TRUE(r);
    Status failure;
    auto arrivals = r->ReadAll({fid}, {}, 64, &failure);
    if (!failure.ok()) {
      ++failed;
      continue;
    }
    ASSERT_EQ(arrivals.size(), 1u);
    if (arrivals[0].header.status != ReadStatus::kOk) continue;
    // Whatever arrived whole is the record as it is in the file now.
    (void)testing::VerifyArrival(arrivals[0], fid);
  }
  EXPECT_GT(failed, 0u) << "no record lay past the new end of the file";
  EXPECT_GT(agent.tcp_read_server()->stats().send_failures, 0u);
  fs::resize_file(dat, size);  // the agent is alive and serving: the file is whole again
  auto r = Reader::Connect(agent.tcp_read_port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ReadAll({fids.front()}).size(), 1u);
}

// A TcpCheckedReader over one end of a socketpair, having asked for one fid (tag `tag`); the
// test plays the agent on `agent_fd`.
struct ReaderOverSocketpair {
  explicit ReaderOverSocketpair(size_t tag) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    agent_fd = fds[1];
    pool.emplace(std::move(*rdma::BufferPool::Create(registrar)));
    reader = client::TcpCheckedReader::Adopt(fds[0], *pool);
    std::vector<ReadRequestEntry> entries = {{"3,01637037d6", ""}};
    std::vector<size_t> tags = {tag};
    EXPECT_TRUE(reader->Send(entries, tags, false).ok());
  }
  ~ReaderOverSocketpair() { ::close(agent_fd); }
  // Sends the reply header for that fid: a record of `length` bytes of a needle of `size`.
  void SendHeader(uint64_t length, uint32_t size) {
    std::array<uint8_t, kReadReplyHeaderBytes> header{};
    EncodeReadReplyHeader({.status = ReadStatus::kOk,
                           .needle_version = 3,
                           .request_id = 1,
                           .index = 0,
                           .volume_id = 3,
                           .generation = 1,
                           .length = length,
                           .needle_size = size},
                          header);
    EXPECT_EQ(::send(agent_fd, header.data(), header.size(), 0),
              static_cast<ssize_t>(header.size()));
  }

  client::PlainRegistrar registrar;
  std::optional<rdma::BufferPool> pool;
  std::unique_ptr<client::TcpCheckedReader> reader;
  int agent_fd = -1;
};

// A reply whose record arrives in pieces is outstanding until its last byte: a round that
// counted it done at its header would stop waiting and lose the fid.
TEST(TcpReadTest, ReplyInPiecesStaysOutstandingUntilWhole) {
  ReaderOverSocketpair p(42);
  auto& reader = p.reader;
  const int agent_fd = p.agent_fd;
  p.SendHeader(100, 100);
  std::vector<uint8_t> record(100, 0x5a);
  ASSERT_EQ(::send(agent_fd, record.data(), 50, 0), 50);
  std::vector<client::CheckedArrival> out;
  // Nothing whole can come: the wait ends at its (short) deadline whatever the machine's speed.
  Status s = reader->Poll(out, rdma::DeadlineIn(50ms));
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(reader->outstanding(), 1u);
  ASSERT_EQ(::send(agent_fd, record.data() + 50, 50, 0), 50);
  s = reader->Poll(out, rdma::DeadlineIn(20s));
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tag, 42u);
  EXPECT_EQ(reader->outstanding(), 0u);
  EXPECT_EQ(std::memcmp(out[0].record.data(), record.data(), record.size()), 0);
}

// A reply header names its record's length before the bytes come: a length past what the client
// takes (an agent announcing 3 GiB) fails the connection at once, before any buffer is mapped.
TEST(TcpReadTest, AnnouncedRecordsPastTheLimitAreRefusedBeforeAnyBuffer) {
  EXPECT_EQ(client::TcpCheckedReader::kDefaultMaxRecordBytes, uint64_t{1} << 30);
  ReaderOverSocketpair p(7);
  p.SendHeader(uint64_t{3} << 30, 3u << 30);
  std::vector<client::CheckedArrival> out;
  Status s = p.reader->Poll(out, rdma::DeadlineIn(20s));
  EXPECT_EQ(s.code(), Code::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("3221225472"), std::string::npos) << s.ToString();
  EXPECT_EQ(p.pool->stats().chunks, 0u) << "no buffer was mapped for it";
}

// The Client takes the TCP read port when asked for tcp only, and reads every needle exactly.
TEST(TcpReadTest, ClientAskingForTcpUsesTheReadPort) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  testing::GenerateExpected({.dir = tmp / "vols",
                             .volume_id = 10,
                             .needles = 100,
                             .max_size = 256 << 10,
                             .gzip_fraction = 0.3,
                             .delete_fraction = 0.1,
                             .seed = 13},
                            expected);
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  auto c = client::Client::Connect({.agent_url = agent.url(), .transports = "tcp"});
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  auto t = (*c)->Transports();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(*t, std::vector<std::string>{"tcp"});
  std::vector<std::string> fids;
  for (const auto& [fid, e] : expected)
    fids.push_back(fid);
  auto results = (*c)->ReadMany(fids);
  ASSERT_EQ(results.size(), fids.size());
  for (size_t i = 0; i < fids.size(); ++i) {
    const auto& e = expected.at(fids[i]);
    if (e.deleted) {
      ASSERT_FALSE(results[i].has_value());
      EXPECT_EQ(results[i].error().code(), Code::kDeleted);
      continue;
    }
    ASSERT_TRUE(results[i].has_value()) << fids[i] << ": " << results[i].error().ToString();
    EXPECT_EQ(results[i]->data, e.data) << fids[i];
  }
  EXPECT_GT(agent.tcp_read_server()->stats().replies_ok, 80u);
  EXPECT_EQ(agent.read_server().stats().requests, 0u);
}

}  // namespace
}  // namespace swrdma
