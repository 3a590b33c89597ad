// Same-host reads (issue 18): the agent's Unix socket hands out read-only volume descriptors, the
// client maps them and verifies records in place (transport "local"). Byte-exact reads of
// generated and fixture volumes, vacuum and truncation during reads (never wrong bytes), the
// allow-list (a uid not on it is refused: a forked child as `nobody`), read-only descriptors,
// descriptor leaks over 1,000 connects, --transports forbidding it, fallback without the socket.
#include <fcntl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <CLI/CLI.hpp>

#include "agent/agent_config.h"
#include "agent/local_server.h"
#include "client/client.h"
#include "client/local_reader.h"
#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "protocol/local_messages.h"
#include "protocol/needle.h"
#include "rdma/mapped_file.h"
#include "tests/generated_volume.h"
#include "tests/in_process_agent.h"
#include "tests/test_util.h"
#include "volume/ec_volume.h"
#include "volume/idx_file.h"
#include "volume/superblock.h"
#include "volume/volume_generator.h"
#include "volume/volume_writer.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A bounded wait for a condition (agent follows a change within ~50 ms; 3 s for loaded CI).
template <typename Pred>
bool WaitFor(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(3)) {
  const auto end = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

size_t OpenFds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd"))
    ++n;
  return n;
}

class LocalReadTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(tmp_ / "vols"); }

  testing::InProcessAgentOptions AgentOptions() {
    testing::InProcessAgentOptions o;
    o.local_socket = tmp_ / "run/agent.sock";
    return o;
  }
  std::unique_ptr<client::Client> Connect(const testing::InProcessAgent& agent,
                                          std::optional<std::string> transports = std::nullopt,
                                          std::chrono::milliseconds ttl = std::chrono::seconds(1)) {
    client::ClientOptions o;
    o.agent_url = agent.url();
    o.transports = std::move(transports);
    o.lookup_cache_ttl = ttl;
    auto c = client::Client::Connect(o);
    EXPECT_TRUE(c) << c.error().ToString();
    return c ? std::move(*c) : nullptr;
  }

  testing::TempDir tmp_{"swrdma-local"};
};

TEST(LocalMessages, RoundTripAndRejectGarbage) {
  LocalRequest lookup{.op = LocalOp::kLookup, .fids = {"3,01637037d6", "", "7,ff"}};
  auto back = DecodeLocalRequest(EncodeLocalRequest(lookup));
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->fids, lookup.fids);
  auto open = DecodeLocalRequest(EncodeLocalRequest({.op = LocalOp::kOpen, .volume_id = 77}));
  ASSERT_TRUE(open);
  EXPECT_EQ(open->volume_id, 77u);
  std::vector<LocalLookupEntry> entries(2);
  entries[0] = {LocalStatus::kOk, 3, 9, 4096, 128, 100, 3, ""};
  entries[1] = {LocalStatus::kDeleted, 3, 0, 0, 0, 0, 3, std::string(5000, 'x')};
  auto reply = DecodeLookupReply(EncodeLookupReply(LocalStatus::kOk, entries));
  ASSERT_TRUE(reply);
  EXPECT_EQ((*reply)[0].offset, 4096u);
  EXPECT_EQ((*reply)[1].reason.size(), kMaxLocalReason);  // cut: a reply always fits a packet
  EXPECT_LE(
      EncodeLookupReply(LocalStatus::kOk, std::vector<LocalLookupEntry>(
                                              kMaxLocalLookup, {.reason = std::string(9999, 'y')}))
          .size(),
      kMaxLocalMessage);
  // Every truncation and a flipped op or magic is refused, never read past the end.
  auto bytes = EncodeLocalRequest(lookup);
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(DecodeLocalRequest(std::span(bytes).first(n))) << n;
  bytes[4] = 99;
  EXPECT_FALSE(DecodeLocalRequest(bytes));
  auto hello = EncodeHelloReply({.instance = 5});
  hello[0] ^= 1;
  EXPECT_FALSE(DecodeHelloReply(hello));
  auto too_many = EncodeLocalRequest(
      {.op = LocalOp::kLookup, .fids = std::vector<std::string>(kMaxLocalLookup + 1, "1,1")});
  EXPECT_FALSE(DecodeLocalRequest(too_many));
}

TEST_F(LocalReadTest, GeneratedVolumesReadByteExactInPlace) {
  testing::ExpectedNeedles expected;
  std::vector<std::string> fids;
  for (uint32_t vid : {3u, 4u}) {
    GenerateOptions g;
    g.dir = tmp_ / "vols";
    g.volume_id = vid;
    g.needles = 400;
    g.min_size = 1;
    g.max_size = 256 * 1024;
    g.gzip_fraction = 0.3;
    g.delete_fraction = 0.1;
    g.seed = 40 + vid;
    auto report = testing::GenerateExpected(g, expected);
    ASSERT_FALSE(report.needles.empty());
    for (const auto& n : report.needles)
      fids.push_back(FormatFileId(n.fid));
  }
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", AgentOptions());
  auto c = Connect(agent);
  ASSERT_TRUE(c);
  auto t = c->Transports();
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, std::vector<std::string>{"local"});

  auto results = c->ReadMany(fids);
  size_t live = 0;
  for (size_t i = 0; i < fids.size(); ++i) {
    const auto& e = expected[fids[i]];
    if (e.deleted) {
      ASSERT_FALSE(results[i]) << fids[i];
      EXPECT_EQ(results[i].error().code(), Code::kDeleted);
      continue;
    }
    ASSERT_TRUE(results[i]) << fids[i] << ": " << results[i].error().ToString();
    EXPECT_EQ(results[i]->data, e.data) << fids[i];
    EXPECT_EQ(results[i]->via, "local");
    ++live;
  }
  EXPECT_GT(live, 700u);
  // Views point into the volume mapping: no registered buffer pool exists at all.
  auto views = c->ReadViews(fids);
  for (size_t i = 0; i < fids.size(); ++i) {
    if (expected[fids[i]].deleted) continue;
    ASSERT_TRUE(views[i]) << views[i].error().ToString();
    EXPECT_EQ(views[i]->via(), "local");
    std::vector<uint8_t> d(views[i]->data().begin(), views[i]->data().end());
    EXPECT_EQ(views[i]->stored_gzipped() ? *Gunzip(d) : d, expected[fids[i]].data);
  }
  EXPECT_EQ(c->buffer_pool_stats().registered_bytes, 0u);
  const auto s = agent.local_server()->stats();
  EXPECT_EQ(s.fds_sent, 2u);  // one descriptor per volume, then mappings are reused
  EXPECT_EQ(s.connections, 1u);
  EXPECT_EQ(s.refused, 0u);
}

// An erasure-coded volume has no one file to hand out: the socket answers its needles
// "checked" and the client reads them through the agent's read port (loopback), in the same
// ReadMany as the needles it reads in place.
TEST_F(LocalReadTest, ErasureCodedNeedlesAreReadThroughTheAgent) {
  testing::ExpectedNeedles expected;
  std::vector<std::string> fids;
  fs::create_directories(tmp_ / "src");
  for (uint32_t vid : {3u, 5u}) {
    GenerateOptions g;
    g.dir = tmp_ / (vid == 3 ? "vols" : "src");
    g.volume_id = vid;
    g.needles = 60;
    g.min_size = 1;
    g.max_size = 64 * 1024;
    g.gzip_fraction = 0.3;
    g.delete_fraction = 0.1;
    g.seed = 70 + vid;
    auto report = testing::GenerateExpected(g, expected);
    ASSERT_FALSE(report.needles.empty());
    for (const auto& n : report.needles)
      fids.push_back(FormatFileId(n.fid));
  }
  ASSERT_TRUE(
      ec::EncodeEcVolume(tmp_ / "src/5.dat", tmp_ / "src/5.idx", tmp_ / "vols", "5", {}).ok());
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", AgentOptions());
  auto c = Connect(agent);
  ASSERT_TRUE(c);
  EXPECT_EQ(*c->Transports(), std::vector<std::string>{"local"});
  size_t in_place = 0, through_agent = 0;
  auto results = c->ReadMany(fids);
  for (size_t i = 0; i < fids.size(); ++i) {
    const auto& e = expected[fids[i]];
    if (e.deleted) {
      // An EC volume's deletions are tombstones in its .ecx: not found, as weed answers them.
      ASSERT_FALSE(results[i]) << fids[i];
      EXPECT_EQ(results[i].error().code(),
                fids[i].starts_with("3,") ? Code::kDeleted : Code::kNotFound)
          << results[i].error().ToString();
      continue;
    }
    ASSERT_TRUE(results[i]) << fids[i] << ": " << results[i].error().ToString();
    EXPECT_EQ(results[i]->data, e.data) << fids[i];
    (results[i]->via == "local" ? in_place : through_agent) += 1;
    EXPECT_EQ(results[i]->via == "local", fids[i].starts_with("3,")) << fids[i];
  }
  EXPECT_GT(in_place, 40u);
  EXPECT_GT(through_agent, 40u) << "the EC volume's needles, checked reads over the read port";
  // Without a read port the client says what to do instead of failing obscurely.
  testing::InProcessAgentOptions no_port = AgentOptions();
  no_port.local_socket = tmp_ / "run/agent2.sock";
  no_port.tcp_read = false;
  testing::InProcessAgent agent2({tmp_ / "vols"}, tmp_ / "index2", no_port);
  auto c2 = Connect(agent2);
  ASSERT_TRUE(c2);
  const std::string ec_fid = *std::find_if(fids.begin(), fids.end(), [&](const std::string& f) {
    return f.starts_with("5,") && !expected[f].deleted;
  });
  auto r = c2->Read(ec_fid);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("--read-port"), std::string::npos) << r.error().ToString();
}

TEST_F(LocalReadTest, RealSeaweedFsFixturesReadBack) {
  SWRDMA_REQUIRE_FIXTURES(fixtures);
  fs::copy_file(fixtures / "ec_1.dat", tmp_ / "vols/1.dat");
  fs::copy_file(fixtures / "ec_1.idx", tmp_ / "vols/1.idx");
  fs::copy_file(fixtures / "healthy_volume.dat", tmp_ / "vols/7.dat");
  fs::copy_file(fixtures / "healthy_volume.idx", tmp_ / "vols/7.idx");
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", AgentOptions());
  ASSERT_EQ(agent.report().exported, 2u);
  auto c = Connect(agent, "local");
  ASSERT_TRUE(c);
  size_t live = 0;
  for (uint32_t vid : {1u, 7u}) {
    // Expected bytes decoded straight from the .dat through the replayed .idx.
    auto mapping = rdma::MappedFile::Open(tmp_ / "vols" / (std::to_string(vid) + ".dat"));
    ASSERT_TRUE(mapping);
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(mapping->data()),
                                   mapping->size());
    auto sb = ParseSuperBlock(bytes);
    ASSERT_TRUE(sb);
    std::map<uint64_t, IdxEntry> last;
    ASSERT_TRUE(ScanIdxFile(tmp_ / "vols" / (std::to_string(vid) + ".idx"), OffsetWidth::k4, 0,
                            [&](const IdxEntry& e) { last[e.needle_id] = e; }));
    for (const auto& [id, e] : last) {
      if (e.is_deletion()) continue;
      auto rec = ParseNeedleRecord(bytes.subspan(e.offset), sb->version);
      ASSERT_TRUE(rec);
      const std::string fid = FormatFileId({vid, id, rec->header.cookie});
      auto r = c->Read(fid);
      ASSERT_TRUE(r) << fid << ": " << r.error().ToString();
      EXPECT_EQ(r->via, "local");
      EXPECT_EQ(r->data, rec->is_gzipped()
                             ? *Gunzip(rec->data)
                             : std::vector<uint8_t>(rec->data.begin(), rec->data.end()));
      ++live;
    }
  }
  EXPECT_GT(live, 0u);
}

TEST_F(LocalReadTest, TransportsForbidLocalAndFallbackWithoutTheSocket) {
  GenerateOptions g;
  g.dir = tmp_ / "vols";
  g.volume_id = 2;
  g.needles = 20;
  testing::ExpectedNeedles expected;
  auto report = testing::GenerateExpected(g, expected);
  const std::string fid = FormatFileId(report.needles[0].fid);
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", AgentOptions());
  {
    auto c = Connect(agent, "tcp");  // local not named: UCX over tcp
    ASSERT_TRUE(c);
    EXPECT_NE(*c->Transports(), std::vector<std::string>{"local"});
    auto r = c->Read(fid);
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->via, "rdma");
  }
  {
    auto c = Connect(agent, "local,tcp");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->Read(fid)->via, "local");
  }
  agent.local_server()->Stop();  // /v1/info still names the socket; it is gone
  {
    auto c = Connect(agent);  // default: local if possible, else UCX
    ASSERT_TRUE(c);
    auto r = c->Read(fid);
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->via, "rdma");
    EXPECT_EQ(r->data, expected[fid].data);
  }
  client::ClientOptions o;
  o.agent_url = agent.url();
  o.transports = "local";
  auto only = client::Client::Connect(o);
  ASSERT_FALSE(only);
  EXPECT_NE(only.error().message().find("--transports local"), std::string::npos)
      << only.error().ToString();
}

// An overwrite (same fid, a new record appended; the old one still passes every check) reaches a
// same-host reader within its lookup cache's TTL, as a delete does, and meanwhile it reads the
// old bytes or the new, nothing else.
TEST_F(LocalReadTest, OverwritesAreSeenWithinTheLookupTtlLikeDeletes) {
  VolumeWriterOptions wo;
  wo.dir = tmp_ / "vols";
  wo.volume_id = 12;
  auto w = VolumeWriter::Create(wo);
  ASSERT_TRUE(w);
  const auto first = GeneratedNeedleData(12, 1, 7000, false);
  const auto second = GeneratedNeedleData(12, 2, 5000, false);
  NeedleSpec spec{.id = 1, .cookie = 0x5151, .data = first};
  ASSERT_TRUE(w->Append(spec));
  NeedleSpec other{.id = 2, .cookie = 0x5252, .data = second};
  ASSERT_TRUE(w->Append(other));
  const std::string fid = FormatFileId({12, 1, 0x5151});
  const std::string gone = FormatFileId({12, 2, 0x5252});
  auto opts = AgentOptions();
  opts.watch = true;
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", opts);
  constexpr auto kTtl = std::chrono::milliseconds(300);
  auto c = Connect(agent, "local", kTtl);
  ASSERT_TRUE(c);
  for (const auto& f : {fid, gone}) {
    auto r = c->Read(f);  // cached from here on
    ASSERT_TRUE(r) << r.error().ToString();
    ASSERT_EQ(r->via, "local");
  }

  const auto again = GeneratedNeedleData(12, 3, 9000, false);
  spec.data = again;
  ASSERT_TRUE(w->Append(spec));
  ASSERT_TRUE(w->Delete(2, 0x5252).ok());
  bool saw_new = false, saw_deleted = false;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = c->Read(fid);
        EXPECT_TRUE(r) << r.error().ToString();
        if (r) {
          EXPECT_TRUE(r->data == first || r->data == again) << "neither the old nor the new bytes";
          saw_new = saw_new || r->data == again;
        }
        auto d = c->Read(gone);
        if (d) {
          EXPECT_EQ(d->data, second);
        }
        if (!saw_deleted && !d) {
          EXPECT_EQ(d.error().code(), Code::kDeleted) << d.error().ToString();
          saw_deleted = true;
        }
        return saw_new && saw_deleted;
      },
      kTtl + std::chrono::seconds(3)))
      << "within the TTL + 3 s (the agent's scan on a loaded machine): overwrite seen " << saw_new
      << ", delete seen " << saw_deleted;
  // And once seen, the new bytes stay (no cached answer brings the old record back).
  for (int i = 0; i < 20; ++i) {
    auto r = c->Read(fid);
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->data, again);
  }
}

TEST_F(LocalReadTest, VacuumAndTruncationDuringReadsNeverGiveWrongBytes) {
  VolumeWriterOptions wo;
  wo.dir = tmp_ / "vols";
  wo.volume_id = 9;
  auto w = VolumeWriter::Create(wo);
  ASSERT_TRUE(w);
  std::map<std::string, std::vector<uint8_t>> want;
  std::vector<std::string> fids;
  std::vector<FileId> ids;
  for (uint64_t id = 1; id <= 60; ++id) {
    NeedleSpec spec;
    spec.id = id;
    spec.cookie = static_cast<uint32_t>(0xAB000000 + id);
    auto data = GeneratedNeedleData(9, id, 9000 + id * 37, false);
    spec.data = data;
    ASSERT_TRUE(w->Append(spec));
    const FileId f{9, id, spec.cookie};
    ids.push_back(f);
    fids.push_back(FormatFileId(f));
    want[fids.back()] = data;
  }
  auto opts = AgentOptions();
  opts.watch = true;
  opts.retire_grace = std::chrono::milliseconds(200);
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", opts);

  // A reader thread reads every needle over and over, with a short lookup cache: whatever
  // happens to the file, a successful read has exactly the written bytes.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ok{0}, failed{0}, wrong{0};
  std::thread reader([&] {
    auto c = Connect(agent, "local", std::chrono::milliseconds(20));
    if (!c) return;
    while (!stop.load()) {
      auto results = c->ReadMany(fids);
      for (size_t i = 0; i < fids.size(); ++i) {
        if (!results[i]) {
          ++failed;
          continue;
        }
        if (results[i]->data != want[fids[i]] || results[i]->via != "local") ++wrong;
        ++ok;
      }
    }
  });
  ASSERT_TRUE(WaitFor([&] { return ok.load() > 600; }));

  // 1. Vacuum as the volume server does: live needles (every other one) into a new file with
  //    revision + 1, renamed over the old .dat/.idx.
  const uint64_t gen0 = agent.generation(9);
  fs::create_directories(tmp_ / "stage");
  {
    VolumeWriterOptions so = wo;
    so.dir = tmp_ / "stage";
    so.compaction_revision = 1;
    auto v = VolumeWriter::Create(so);
    ASSERT_TRUE(v);
    for (const FileId& f : ids) {
      if (f.needle_id % 2 == 0) continue;
      NeedleSpec spec;
      spec.id = f.needle_id;
      spec.cookie = f.cookie;
      spec.data = want[FormatFileId(f)];
      ASSERT_TRUE(v->Append(spec));
    }
  }
  fs::rename(tmp_ / "stage/9.vif", tmp_ / "vols/9.vif");
  fs::rename(tmp_ / "stage/9.dat", tmp_ / "vols/9.dat");
  fs::rename(tmp_ / "stage/9.idx", tmp_ / "vols/9.idx");
  ASSERT_TRUE(WaitFor([&] { return agent.generation(9) != gen0; })) << "vacuum not followed";
  const uint64_t ok_after_vacuum = ok.load();
  ASSERT_TRUE(WaitFor([&] { return ok.load() > ok_after_vacuum + 600; }));

  // 2. Truncate the (new) file in place, in the middle of the live needles.
  const uint64_t gen1 = agent.generation(9);
  const uint64_t cut = fs::file_size(tmp_ / "vols/9.dat") / 2;
  fs::resize_file(tmp_ / "vols/9.dat", cut);
  ASSERT_TRUE(WaitFor([&] { return agent.generation(9) != gen1; })) << "truncation not followed";
  const uint64_t ok_after_cut = ok.load();
  ASSERT_TRUE(WaitFor([&] { return ok.load() > ok_after_cut + 100; }));
  stop = true;
  reader.join();
  EXPECT_EQ(wrong.load(), 0u) << "reads returned wrong bytes";
  EXPECT_GT(failed.load(), 0u);  // deleted by the vacuum, cut by the truncation

  // After both, a fresh client reads what survived and fails the rest cleanly.
  auto c = Connect(agent, "local");
  ASSERT_TRUE(c);
  size_t readable = 0;
  for (size_t i = 0; i < fids.size(); ++i) {
    auto r = c->Read(fids[i]);
    if (ids[i].needle_id % 2 == 0) {
      EXPECT_FALSE(r) << fids[i] << " was vacuumed away";
      continue;
    }
    if (r) {
      EXPECT_EQ(r->data, want[fids[i]]);
      ++readable;
    }
  }
  EXPECT_GT(readable, 0u);
  EXPECT_LT(readable, 30u);  // what lies past the cut is gone
}

// The child's side of the allow-list test: raw syscalls only (we forked a threaded process).
// Exit codes: 0 denied as expected / allowed and the descriptor is read-only; others: failures.
int ChildConnectAs(uid_t uid, const std::string& path, bool expect_allowed) {
  if (setgroups(0, nullptr) != 0 || setgid(uid) != 0 || setuid(uid) != 0) return 10;
  int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(s, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) return 11;
  auto msg = rdma::ReceiveMessage(s, kMaxLocalMessage, std::chrono::seconds(10));
  if (!msg || msg->bytes.empty()) return 13;
  auto hello = DecodeHelloReply(msg->bytes);
  if (!hello) return 14;
  if (!expect_allowed) {
    if (hello->status != LocalStatus::kDenied) return 15;
    if (hello->reason.find("--local-allow-uids") == std::string::npos) return 16;
    // Nothing else is answered: the agent closed the connection.
    rdma::SendMessage(s, EncodeLocalRequest({.op = LocalOp::kOpen, .volume_id = 2})).IgnoreError();
    auto next = rdma::ReceiveMessage(s, kMaxLocalMessage, std::chrono::seconds(10));
    if (next && !next->bytes.empty()) return 17;
    return 0;
  }
  if (hello->status != LocalStatus::kOk) return 18;
  if (!rdma::SendMessage(s, EncodeLocalRequest({.op = LocalOp::kOpen, .volume_id = 2})).ok())
    return 19;
  auto open = rdma::ReceiveMessage(s, kMaxLocalMessage, std::chrono::seconds(10));
  if (!open || !open->fd) return 20;
  // Read-only: opened O_RDONLY, a write fails, a writable mapping is refused.
  if ((::fcntl(open->fd.get(), F_GETFL) & O_ACCMODE) != O_RDONLY) return 21;
  const char byte = 0;
  if (::pwrite(open->fd.get(), &byte, 1, 0) >= 0) return 22;
  if (::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, open->fd.get(), 0) != MAP_FAILED)
    return 23;
  return 0;
}

TEST_F(LocalReadTest, UidNotOnTheAllowListIsRefusedAndDescriptorsAreReadOnly) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to run a child as `nobody` (uid 65534); run the suite as root";
  }
  GenerateOptions g;
  g.dir = tmp_ / "vols";
  g.volume_id = 2;
  g.needles = 5;
  testing::ExpectedNeedles expected;
  testing::GenerateExpected(g, expected);
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index");
  // A socket `nobody` can reach (the file mode is the first fence; here the credential check is
  // what is tested): a world-traversable directory, mode 0666.
  char dir_template[] = "/tmp/swrdma-local-uid-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const fs::path dir(dir_template);
  fs::permissions(dir, fs::perms(0755));
  constexpr uid_t kNobody = 65534;
  auto run_child = [&](const fs::path& path, bool allowed) {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(ChildConnectAs(kNobody, path.string(), allowed));
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
  };
  {
    agent::LocalServerOptions lo;
    lo.path = dir / "refusing.sock";
    lo.mode = 0666;
    auto server = agent::LocalServer::Start(agent.volumes(), lo);
    ASSERT_TRUE(server) << server.error().ToString();
    EXPECT_EQ(run_child(lo.path, false), 0);
    EXPECT_EQ((*server)->stats().refused, 1u);
    EXPECT_EQ((*server)->stats().fds_sent, 0u);
  }
  {
    agent::LocalServerOptions lo;
    lo.path = dir / "allowing.sock";
    lo.mode = 0666;
    lo.allow_uids = {kNobody};
    auto server = agent::LocalServer::Start(agent.volumes(), lo);
    ASSERT_TRUE(server) << server.error().ToString();
    EXPECT_EQ(run_child(lo.path, true), 0);
    EXPECT_EQ((*server)->stats().refused, 0u);
    EXPECT_EQ((*server)->stats().fds_sent, 1u);
  }
  {
    // Default mode 0660, owned by root: `nobody` cannot even connect.
    agent::LocalServerOptions lo;
    lo.path = dir / "closed.sock";
    lo.allow_uids = {kNobody};
    auto server = agent::LocalServer::Start(agent.volumes(), lo);
    ASSERT_TRUE(server);
    EXPECT_EQ((fs::status(lo.path).permissions() & fs::perms::all), fs::perms(0660));
    EXPECT_EQ(run_child(lo.path, true), 11);
  }
  fs::remove_all(dir);
}

TEST_F(LocalReadTest, NoDescriptorLeaksOverAThousandConnects) {
  GenerateOptions g;
  g.dir = tmp_ / "vols";
  g.volume_id = 2;
  g.needles = 10;
  testing::ExpectedNeedles expected;
  testing::GenerateExpected(g, expected);
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", AgentOptions());
  agent::LocalServer& server = *agent.local_server();
  // Agent and client share this process: /proc/self/fd counts both sides.
  const size_t before = OpenFds();
  for (int i = 0; i < 1000; ++i) {
    auto r = client::LocalReader::Connect(server.path().string(), server.instance(),
                                          std::chrono::seconds(10));
    ASSERT_TRUE(r) << i << ": " << r.error().ToString();
    auto m = (*r)->MappingFor(2, agent.generation(2), 8);
    ASSERT_TRUE(m) << i << ": " << m.error().ToString();
  }
  ASSERT_TRUE(WaitFor([&] { return server.stats().open_connections == 0; }))
      << server.stats().open_connections << " connections still open in the agent";
  // Not equal: another thread of the in-process agent may hold a transient descriptor when
  // `before` is taken (seen under ASan: 40 before, 39 after). A per-connect leak shows as +1000.
  EXPECT_LE(OpenFds(), before);
  EXPECT_EQ(server.stats().connections, 1000u);
  EXPECT_EQ(server.stats().fds_sent, 1000u);
}

TEST_F(LocalReadTest, WrongInstanceAndNonSocketPathsAreRefused) {
  GenerateOptions g;
  g.dir = tmp_ / "vols";
  g.volume_id = 2;
  g.needles = 3;
  testing::ExpectedNeedles expected;
  testing::GenerateExpected(g, expected);
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", AgentOptions());
  auto& server = *agent.local_server();
  auto other = client::LocalReader::Connect(server.path().string(), server.instance() + 2,
                                            std::chrono::seconds(10));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code(), Code::kUnavailable);
  std::ofstream(tmp_ / "plain-file") << "x";
  agent::LocalServerOptions lo;
  lo.path = tmp_ / "plain-file";
  auto s = agent::LocalServer::Start(agent.volumes(), lo);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("not a socket"), std::string::npos);
}

TEST_F(LocalReadTest, OffWithReadTokensUnlessAskedFor) {
  GenerateOptions g;
  g.dir = tmp_ / "vols";
  g.volume_id = 2;
  g.needles = 3;
  testing::ExpectedNeedles expected;
  testing::GenerateExpected(g, expected);
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index");
  agent::AgentConfig config;
  CLI::App app;
  agent::AddAgentFlags(app, config);
  const std::string sock = (tmp_ / "tok.sock").string();
  app.parse(std::vector<std::string>{"--local-allow-uids=0,1", "--local-socket=" + sock});
  auto off = agent::StartLocalServer(config, agent.volumes(), /*tokens_on=*/true);
  ASSERT_TRUE(off) << off.error().ToString();
  EXPECT_EQ(off->get(), nullptr);
  EXPECT_FALSE(fs::exists(sock));
  config.local_with_tokens = true;
  auto on = agent::StartLocalServer(config, agent.volumes(), /*tokens_on=*/true);
  ASSERT_TRUE(on) << on.error().ToString();
  ASSERT_NE(on->get(), nullptr);
  EXPECT_TRUE(fs::is_socket(sock));
  config.local_allow_uids = {"no-such-user-anywhere"};
  auto bad = agent::StartLocalServer(config, agent.volumes(), false);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("--local-allow-uids"), std::string::npos);
}

}  // namespace
}  // namespace swrdma
