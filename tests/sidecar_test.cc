// The weed mount sidecar, driven as `weed mount -rdma.enabled` drives it (weed/mount/
// rdma_client.go): GET /health once, then GET /read?file_id=..&offset=..&size=..&volume_server=..
// for chunks, many at once; every 200 body compared byte for byte with what the generator wrote,
// every failure a non-200 JSON error so the mount would fall back to HTTP. Real agent (in
// process), real UCX reads; the only stand-in is a tiny master for the --master paths.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/agent_http.h"
#include "protocol/file_id.h"
#include "protocol/jwt.h"
#include "sidecar/filer_manifest.h"
#include "sidecar/needle_cache.h"
#include "sidecar/sidecar.h"
#include "tests/generated_volume.h"
#include "tests/in_process_agent.h"
#include "tests/test_util.h"
#include "volume/volume_generator.h"
#include "volume/volume_writer.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;

uint16_t DeadPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

using Needle = testing::ExpectedNeedle;

// Protobuf encoding, as the filer writes a filer_pb.FileChunkManifest (mergeIntoManifest).
void PutVarint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}
void PutLen(std::vector<uint8_t>& out, int field, const std::vector<uint8_t>& b) {
  PutVarint(out, (static_cast<uint64_t>(field) << 3) | 2);
  PutVarint(out, b.size());
  out.insert(out.end(), b.begin(), b.end());
}
void PutVarintField(std::vector<uint8_t>& out, int field, uint64_t v) {
  PutVarint(out, static_cast<uint64_t>(field) << 3);
  PutVarint(out, v);
}
// chunks {volume_id, file_key, cookie, offset, size}; after BeforeEntrySerialization (fid set,
// file_id cleared).
std::vector<uint8_t> FilerManifest(size_t chunks) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < chunks; ++i) {
    std::vector<uint8_t> fid, chunk;
    PutVarintField(fid, 1, 3);
    PutVarintField(fid, 2, 0x1234 + i);
    PutVarint(fid, (3 << 3) | 5);
    for (int k = 0; k < 4; ++k)
      fid.push_back(static_cast<uint8_t>(0xA0 + k));
    PutVarintField(chunk, 2, i * 101);
    PutVarintField(chunk, 3, 101);
    PutVarintField(chunk, 4, 1'780'000'000'000'000'000ull + i);
    PutLen(chunk, 7, fid);
    PutLen(out, 1, chunk);
  }
  return out;
}

TEST(FilerManifestTest, RecognisesTheFilersManifestAndLittleElse) {
  for (size_t n : {1, 2, 256}) {
    EXPECT_TRUE(client::LooksLikeFilerChunkManifest(FilerManifest(n))) << n;
  }
  // A chunk naming its needle by the old file_id string is one too.
  std::vector<uint8_t> legacy, chunk;
  const std::string id = "3,01637037d6";
  PutLen(chunk, 1, std::vector<uint8_t>(id.begin(), id.end()));
  PutVarintField(chunk, 3, 10);
  PutLen(legacy, 1, chunk);
  EXPECT_TRUE(client::LooksLikeFilerChunkManifest(legacy));

  EXPECT_FALSE(client::LooksLikeFilerChunkManifest({}));
  auto cut = FilerManifest(3);
  cut.pop_back();
  EXPECT_FALSE(client::LooksLikeFilerChunkManifest(cut));
  std::vector<uint8_t> anonymous, size_only;  // a chunk that names no needle
  PutVarintField(size_only, 3, 10);
  PutLen(anonymous, 1, size_only);
  EXPECT_FALSE(client::LooksLikeFilerChunkManifest(anonymous));
  const std::string text = "\n{\"chunks\":[]} hello world\n";
  EXPECT_FALSE(client::LooksLikeFilerChunkManifest(std::vector<uint8_t>(text.begin(), text.end())));
  // Random data of every size up to 4 KiB, and generated needle data: never.
  std::mt19937_64 rng(15);
  size_t positives = 0;
  for (size_t size = 1; size <= 4096; ++size) {
    std::vector<uint8_t> d(size);
    for (auto& b : d)
      b = static_cast<uint8_t>(rng());
    positives += client::LooksLikeFilerChunkManifest(d);
    positives += client::LooksLikeFilerChunkManifest(GeneratedNeedleData(4, size, size, false));
  }
  EXPECT_EQ(positives, 0u);
}

constexpr const char* kVolumeServer = "http://127.0.0.1:8080";  // mapped to the agent

class SidecarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(tmp_ / "vols");
    GenerateOptions o;
    o.dir = tmp_ / "vols";
    o.volume_id = 4;
    o.needles = 80;
    o.min_size = 1;
    o.max_size = 300'000;
    o.gzip_fraction = 0.4;
    o.delete_fraction = 0.1;
    o.seed = 9;
    testing::GenerateExpected(o, needles_);
    ASSERT_FALSE(needles_.empty());
    // Volume 7: a filer manifest chunk's needle as the filer stores it (no name, no mime, no
    // 0x80 flag), the same bytes with a name (an ordinary file), and with the 0x80 flag.
    VolumeWriterOptions vo;
    vo.dir = tmp_ / "vols";
    vo.volume_id = 7;
    auto w = VolumeWriter::Create(vo);
    ASSERT_TRUE(w) << w.error().ToString();
    manifest_ = FilerManifest(256);
    for (uint64_t id : {1, 2, 3}) {
      NeedleSpec spec;
      spec.id = id;
      spec.cookie = 0x5EED0000 + static_cast<uint32_t>(id);
      spec.data = manifest_;
      if (id == 2) spec.name = "manifest.pb";
      spec.chunk_manifest = id == 3;
      ASSERT_TRUE(w->Append(spec)) << id;
      manifest_fids_.push_back(FormatFileId(FileId{7, id, spec.cookie}));
    }
    agent_ = std::make_unique<testing::InProcessAgent>(std::vector<fs::path>{tmp_ / "vols"},
                                                       tmp_ / "index");
    std::ofstream map(tmp_ / "agents.map");
    map << "127.0.0.1:8080 " << agent_->url() << "\n"
        << "127.0.0.1:8099 http://127.0.0.1:" << DeadPort() << "  # a dead agent\n";
  }

  void StartSidecar(std::string master = {}) {
    client::SidecarOptions o;
    o.listen = "127.0.0.1:0";
    o.agent_map = (tmp_ / "agents.map").string();
    o.master_url = std::move(master);
    o.client.transports = "tcp";
    o.client.timeout = std::chrono::seconds(5);
    o.client.lookup_cache_ttl = std::chrono::minutes(1);  // also the needle cache's TTL
    o.threads = 4;
    o.clients_per_agent = 2;
    auto s = client::Sidecar::Start(o);
    ASSERT_TRUE(s) << s.error().ToString();
    sidecar_ = std::move(*s);
  }

  // What the mount does: one GET, the reply as is.
  client::HttpReply Get(const std::string& target) {
    client::AgentHttp http({"127.0.0.1", sidecar_->port(), ""}, std::chrono::seconds(10));
    auto r = http.Request("GET", target);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : client::HttpReply{};
  }
  std::string ReadTarget(const std::string& fid, uint64_t offset, uint64_t size,
                         const std::string& vs = kVolumeServer) {
    return fmt::format("/read?file_id={}&offset={}&size={}&volume_server={}", fid, offset, size,
                       vs);
  }
  std::string Slice(const std::vector<uint8_t>& d, size_t offset, size_t n) {
    n = std::min(n, d.size() - offset);
    return std::string(reinterpret_cast<const char*>(d.data()) + offset, n);
  }
  std::vector<std::string> LiveFids(bool gzipped) {
    std::vector<std::string> out;
    for (const auto& [fid, n] : needles_) {
      if (!n.deleted && n.gzipped == gzipped && n.data.size() > 10) out.push_back(fid);
    }
    return out;
  }

  testing::TempDir tmp_;
  std::map<std::string, Needle> needles_;
  std::vector<uint8_t> manifest_;
  std::vector<std::string> manifest_fids_;  // filer manifest, named file, 0x80 manifest
  std::unique_ptr<testing::InProcessAgent> agent_;
  std::unique_ptr<client::Sidecar> sidecar_;
};

TEST_F(SidecarTest, HealthThenChunkReadsMatchWhatWasWritten) {
  StartSidecar();
  auto health = Get("/health");
  ASSERT_EQ(health.status, 200) << health.body;
  auto hj = nlohmann::json::parse(health.body);
  EXPECT_EQ(hj["status"], "healthy");
  EXPECT_EQ(hj["rdma"]["enabled"], true);
  EXPECT_EQ(hj["rdma"]["connected"], false);  // nothing read yet

  size_t checked = 0;
  for (bool gz : {false, true}) {
    const auto fids = LiveFids(gz);
    ASSERT_GE(fids.size(), 5u);
    for (size_t k = 0; k < 8 && k < fids.size(); ++k) {
      const std::string& fid = fids[k];
      const auto& d = needles_[fid].data;
      // All but the last byte, a middle chunk, bytes just before the end, size 0 (to the end).
      const std::vector<std::pair<size_t, size_t>> ranges = {
          {0, d.size() - 1}, {d.size() / 3, d.size() / 3 + 1}, {d.size() - 7, 6}, {5, 0}};
      for (auto [offset, size] : ranges) {
        auto r = Get(ReadTarget(fid, offset, size));
        ASSERT_EQ(r.status, 200) << fid << " " << r.body;
        EXPECT_EQ(r.Header("X-RDMA-Used"), "true");
        EXPECT_NE(r.Header("X-Source").find("rdma"), std::string::npos);
        EXPECT_EQ(r.content_type, "application/octet-stream");
        EXPECT_EQ(r.body, Slice(d, offset, size == 0 ? d.size() : size))
            << fid << " offset " << offset << " size " << size << (gz ? " (gzip)" : "");
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 64u);
  hj = nlohmann::json::parse(Get("/health").body);
  EXPECT_EQ(hj["rdma"]["connected"], true);
  EXPECT_EQ(sidecar_->stats().reads, 64u);
}

TEST_F(SidecarTest, FailuresAreNon200JsonSoTheMountFallsBack) {
  StartSidecar();
  const std::string live = LiveFids(false).front();
  std::string deleted;
  for (const auto& [fid, n] : needles_) {
    if (n.deleted) deleted = fid;
  }
  ASSERT_FALSE(deleted.empty());
  struct Case {
    std::string target;
    int status;
  };
  const std::vector<Case> cases = {
      {ReadTarget("4,ffff0000aaaa", 0, 10), 404},  // no such needle
      {ReadTarget(deleted, 0, 10), 404},
      {ReadTarget("5,01637037d6", 0, 10), 404},                 // volume not on that agent
      {ReadTarget(live, 0, 10, "http://127.0.0.1:8099"), 502},  // agent down
      {ReadTarget(live, needles_[live].data.size() + 1, 10), 416},
      {ReadTarget(live, needles_[live].data.size() + 1, 0), 416},
      {"/read?offset=0&size=10&volume_server=http://127.0.0.1:8080", 400},  // no file_id
      {ReadTarget("4,zz", 0, 10), 400},
      {ReadTarget("nonsense", 0, 10), 400},
      {"/read?file_id=" + live + "&offset=abc&size=1&volume_server=127.0.0.1:8080", 400},
      {"/read?file_id=" + live + "&offset=0&size=1", 400},  // no volume_server, no --master
      {ReadTarget(live, 0, 10, "http://:8080"), 400},
      {"/nope", 404},
  };
  for (const auto& c : cases) {
    auto r = Get(c.target);
    EXPECT_EQ(r.status, c.status) << c.target << ": " << r.body;
    EXPECT_NE(r.body.find("\"error\""), std::string::npos) << c.target << ": " << r.body;
    EXPECT_TRUE(r.Header("X-RDMA-Used").empty()) << c.target;
  }
  // Still serving after all that; the mount's cleanup call is accepted.
  EXPECT_EQ(Get(ReadTarget(live, 0, 0)).status, 200);
  client::AgentHttp http({"127.0.0.1", sidecar_->port(), ""}, std::chrono::seconds(5));
  auto cleanup = http.Request("DELETE", "/cleanup?temp_file=/tmp/x");
  ASSERT_TRUE(cleanup);
  EXPECT_EQ(cleanup->status, 200);
}

// weed mount's tryRDMARead places a FUSE read in one chunk, asks for min(read size, rest of the
// chunk) and returns whatever 200 body arrives as the whole read: a read straddling two chunks
// comes as a range reaching the needle's end, and a short answer is taken for the end of the
// file. Ranges at or past the end are refused; ranges ending inside the data are served.
TEST_F(SidecarTest, RangesAtOrPastTheEndAreRefusedNotCutShort) {
  StartSidecar();
  for (bool gz : {false, true}) {
    const std::string fid = LiveFids(gz).front();
    const auto& d = needles_[fid].data;
    const std::vector<std::pair<uint64_t, uint64_t>> past = {
        {d.size() - 7, 8},  // one byte too many
        {0, d.size() + 1},  // the whole data and one more
        {d.size(), 1},      // at the end
        {1, UINT64_MAX},    // offset + size overflows
        {UINT64_MAX, 1}};
    const std::vector<std::pair<uint64_t, uint64_t>> at_end = {{d.size() - 7, 7}, {0, d.size()}};
    for (const auto& ranges : {past, at_end}) {
      for (auto [offset, size] : ranges) {
        auto r = Get(ReadTarget(fid, offset, size));
        EXPECT_EQ(r.status, 416) << fid << " offset " << offset << " size " << size << ": "
                                 << r.body;
        EXPECT_TRUE(r.Header("X-RDMA-Used").empty());
        EXPECT_NE(r.body.find("the end of its"), std::string::npos) << r.body;
      }
    }
    // Ending one byte before the end is served; so is size 0 (to the end, not sent by the mount).
    auto last = Get(ReadTarget(fid, d.size() - 7, 6));
    EXPECT_EQ(last.status, 200);
    EXPECT_EQ(last.body, Slice(d, d.size() - 7, 6));
    auto rest = Get(ReadTarget(fid, d.size() - 7, 0));
    EXPECT_EQ(rest.status, 200);
    EXPECT_EQ(rest.body, Slice(d, d.size() - 7, 7));
  }
  EXPECT_EQ(sidecar_->stats().past_end, 10u);
  EXPECT_EQ(sidecar_->stats().at_end, 4u);
  EXPECT_EQ(sidecar_->stats().reads, 4u);
}

// weed mount's RDMA path ignores a chunk's is_chunk_manifest and asks for the manifest needle's
// bytes as if they were the file's: refused (409), so the mount resolves it over HTTP.
TEST_F(SidecarTest, ChunkManifestNeedlesAreRefusedNotServedAsFileBytes) {
  StartSidecar();
  ASSERT_EQ(manifest_fids_.size(), 3u);
  for (size_t k : {0, 2}) {
    auto r = Get(ReadTarget(manifest_fids_[k], 0, 4096));
    EXPECT_EQ(r.status, 409) << manifest_fids_[k] << ": " << r.body;
    EXPECT_NE(r.body.find("manifest"), std::string::npos) << r.body;
    EXPECT_TRUE(r.Header("X-RDMA-Used").empty());
  }
  EXPECT_EQ(sidecar_->stats().filer_manifests, 1u);
  // The same bytes stored as a named file are a file: served.
  auto named = Get(ReadTarget(manifest_fids_[1], 0, 4096));
  ASSERT_EQ(named.status, 200) << named.body;
  EXPECT_EQ(named.body, std::string(manifest_.begin(), manifest_.begin() + 4096));
}

TEST_F(SidecarTest, EscapedAndLegacyParametersNameTheSameNeedle) {
  StartSidecar();
  const std::string fid = LiveFids(true).front();
  const auto& d = needles_[fid].data;
  auto parsed = ParseFileId(fid);
  ASSERT_TRUE(parsed);
  std::string escaped = fid;
  escaped.replace(escaped.find(','), 1, "%2C");
  auto a =
      Get(fmt::format("/read?file_id={}&offset=1&size=9&volume_server=http%3A%2F%2F127.0.0.1"
                      "%3A8080",
                      escaped));
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.body, Slice(d, 1, 9));
  auto b =
      Get(fmt::format("/read?volume={}&needle={}&cookie={}&offset=1&size=9"
                      "&volume_server=127.0.0.1:8080",
                      parsed->volume_id, parsed->needle_id, parsed->cookie));
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(b.body, a.body);
}

TEST_F(SidecarTest, ManyConcurrentReadsLikeTheMountsMaxConcurrent) {
  StartSidecar();
  const auto fids = LiveFids(false);
  constexpr int kThreads = 16, kReads = 12;
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      client::AgentHttp http({"127.0.0.1", sidecar_->port(), ""}, std::chrono::seconds(20));
      for (int i = 0; i < kReads; ++i) {
        const std::string& fid = fids[(t * kReads + i) % fids.size()];
        const auto& d = needles_.at(fid).data;
        // Ending inside the data (a range reaching its end is refused).
        const size_t offset = (static_cast<size_t>(i) * 131) % (d.size() - 1);
        const size_t n = std::min<size_t>(1000, d.size() - 1 - offset);
        auto r = http.Request("GET", ReadTarget(fid, offset, n));
        (r && r->status == 200 && r->body == Slice(d, offset, n)) ? ++ok : ++bad;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(ok.load(), kThreads * kReads);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LE(sidecar_->stats().agents_connected, 2u);  // clients_per_agent bounds the workers
}

// A master that knows volume 4 is on the mapped volume server: /read without volume_server.
TEST_F(SidecarTest, WithMasterVolumeServerMayBeOmitted) {
  agent::HttpServerOptions mo;
  auto master = agent::HttpServer::Start(mo, [](const agent::HttpRequest& r) {
    if (r.Path() != "/dir/lookup") return agent::HttpResponse::JsonError(404, "no");
    if (r.Query().find("volumeId=4") == std::string_view::npos) {
      return agent::HttpResponse::Json(404, R"({"error":"volume id not found"})");
    }
    return agent::HttpResponse::Json(
        200, R"({"volumeOrFileId":"4","locations":[{"url":"127.0.0.1:8080",)"
             R"("publicUrl":"127.0.0.1:8080"}]})");
  });
  ASSERT_TRUE(master);
  StartSidecar(fmt::format("http://127.0.0.1:{}", (*master)->ports()[0]));
  const std::string fid = LiveFids(false).front();
  auto r = Get(fmt::format("/read?file_id={}&offset=0&size=0", fid));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, Slice(needles_[fid].data, 0, needles_[fid].data.size()));
  EXPECT_EQ(Get("/read?file_id=6,01637037d6&offset=0&size=0").status, 404);
}

// An agent with [jwt.signing.read]: the sidecar learns from its refusal (401) that it needs tokens
// and gets one per read from the master, which signs them as SeaweedFS's master does.
TEST_F(SidecarTest, AgentRequiringTokensGetsThemFromTheMaster) {
  const std::string key = "sidecar-test-read-key";
  testing::InProcessAgent secured({tmp_ / "vols"}, tmp_ / "index-jwt",
                                  testing::InProcessAgentOptions{.jwt_read_key = key});
  {
    std::ofstream map(tmp_ / "agents.map", std::ios::app);
    map << "127.0.0.1:8081 " << secured.url() << "\n";
  }
  const std::string fid = LiveFids(true).front();
  const std::string token = SignReadJwt(fid, key, std::time(nullptr) + 300);
  {
    client::ClientOptions co;
    co.agent_url = secured.url();
    co.transports = "tcp";
    auto c = client::Client::Connect(co);
    ASSERT_TRUE(c) << c.error().ToString();
    auto without = (*c)->Read(fid);
    if (without) GTEST_SKIP() << "the agent does not check read tokens yet";
    auto with = (*c)->Read(fid, {.jwt = token});
    if (!with)
      GTEST_SKIP() << "the client cannot read with a token yet: " << with.error().ToString();
  }
  auto master = agent::HttpServer::Start({}, [&](const agent::HttpRequest& r) {
    std::string q(r.Query());
    const auto p = q.find("fileId=");
    if (r.Path() != "/dir/lookup" || p == std::string::npos) {
      return agent::HttpResponse::JsonError(404, "stand-in master: only fileId lookups");
    }
    std::string f = q.substr(p + 7);
    f = f.substr(0, f.find('&'));
    auto resp = agent::HttpResponse::Json(
        200, R"({"volumeOrFileId":")" + f + R"(","locations":[{"url":"127.0.0.1:8081"}]})");
    resp.headers.push_back(
        {"Authorization", "BEARER " + SignReadJwt(f, key, std::time(nullptr) + 60)});
    return resp;
  });
  ASSERT_TRUE(master);

  StartSidecar();  // no master: the agent's refusal is answered, not hidden
  const std::string vs = "http://127.0.0.1:8081";
  auto refused = Get(ReadTarget(fid, 0, 10, vs));
  EXPECT_EQ(refused.status, 403) << refused.body;
  sidecar_.reset();

  StartSidecar(fmt::format("http://127.0.0.1:{}", (*master)->ports()[0]));
  const auto& d = needles_[fid].data;
  for (int i = 0; i < 3; ++i) {
    auto r = Get(ReadTarget(fid, 2, 100, vs));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, Slice(d, 2, 100));
  }
  const std::string other = LiveFids(false).front();
  auto r = Get(ReadTarget(other, 0, 0, vs));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, Slice(needles_[other].data, 0, needles_[other].data.size()));
  // The refused first try, then one for the other fid: the repeats of the first were served from
  // the needle cache.
  EXPECT_EQ(sidecar_->stats().tokens, 2u);
}

// The pieces of one chunk, requested at once as the mount's read-ahead does, cost one read of
// the needle; later pieces within the TTL are served from the cache.
TEST_F(SidecarTest, PiecesOfOneChunkShareOneNeedleRead) {
  StartSidecar();
  std::string fid;
  for (const auto& f : LiveFids(false)) {
    if (needles_[f].data.size() > 64 * 1024) fid = f;
  }
  ASSERT_FALSE(fid.empty());
  const auto& d = needles_[fid].data;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (size_t offset = 0; offset < d.size() - 1; offset += 16 * 1024) {
    threads.emplace_back([&, offset] {
      client::AgentHttp http({"127.0.0.1", sidecar_->port(), ""}, std::chrono::seconds(10));
      // Up to the last byte (a range reaching the end is refused).
      const size_t n = std::min<size_t>(16 * 1024, d.size() - 1 - offset);
      auto r = http.Request("GET", ReadTarget(fid, offset, n));
      if (r && r->status == 200 && r->body == Slice(d, offset, n)) ++ok;
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(ok.load(), static_cast<int>(threads.size()));
  auto stats = nlohmann::json::parse(Get("/stats").body);
  EXPECT_EQ(stats["cache"]["misses"], 1) << stats.dump();
  EXPECT_EQ(stats["cache"]["hits"], threads.size() - 1) << stats.dump();
  EXPECT_EQ(Get(ReadTarget(fid, 0, 10)).Header("X-Cache"), "hit");
}

TEST(NeedleCacheTest, SingleFlightTtlEvictionAndErrorsNotKept) {
  client::NeedleCache cache(4000, std::chrono::minutes(10));
  std::atomic<int> loads{0};
  auto loader = [&](size_t n) {
    return [&, n]() -> Result<std::vector<uint8_t>> {
      ++loads;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      return std::vector<uint8_t>(n, 7);
    };
  };
  // Eight callers at once: one load.
  std::vector<std::thread> ts;
  std::atomic<int> hits{0};
  for (int i = 0; i < 8; ++i) {
    ts.emplace_back([&] {
      bool hit = false;
      auto d = cache.GetOrLoad("a", loader(1000), &hit);
      ASSERT_TRUE(d);
      EXPECT_EQ((*d)->size(), 1000u);
      if (hit) ++hits;
    });
  }
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(loads.load(), 1);
  EXPECT_EQ(hits.load(), 7);
  // Too big to keep (> max/4): loaded every time.
  ASSERT_TRUE(cache.GetOrLoad("big", loader(1001)));
  ASSERT_TRUE(cache.GetOrLoad("big", loader(1001)));
  EXPECT_EQ(loads.load(), 3);
  // Eviction: a, b, c, d kept (4000 bytes); e evicts the least recently used (b: a was reused).
  for (const char* k : {"b", "c", "d"})
    ASSERT_TRUE(cache.GetOrLoad(k, loader(1000)));
  ASSERT_TRUE(cache.GetOrLoad("a", loader(1000)));
  ASSERT_TRUE(cache.GetOrLoad("e", loader(1000)));
  EXPECT_EQ(cache.stats().bytes, 4000u);
  const int before = loads.load();
  ASSERT_TRUE(cache.GetOrLoad("a", loader(1000)));
  EXPECT_EQ(loads.load(), before);
  ASSERT_TRUE(cache.GetOrLoad("b", loader(1000)));
  EXPECT_EQ(loads.load(), before + 1);
  // Errors are handed to the callers of that load only.
  auto failing = []() -> Result<std::vector<uint8_t>> {
    return Error(Code::kUnavailable, "agent down");
  };
  EXPECT_FALSE(cache.GetOrLoad("x", failing));
  bool hit = true;
  ASSERT_TRUE(cache.GetOrLoad("x", loader(10), &hit));
  EXPECT_FALSE(hit);
  // TTL: an entry older than it is loaded again.
  client::NeedleCache brief(4000, std::chrono::milliseconds(20));
  ASSERT_TRUE(brief.GetOrLoad("y", loader(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const int later = loads.load();
  ASSERT_TRUE(brief.GetOrLoad("y", loader(10), &hit));
  EXPECT_FALSE(hit);
  EXPECT_EQ(loads.load(), later + 1);
}

}  // namespace
}  // namespace swrdma
