// Cluster addressing against a stand-in SeaweedFS master (a tiny HTTP server in this process that
// answers /dir/lookup exactly as documented in FORMAT.md: JSON locations, 404 + {"error"} for an
// unknown volume, the read token in an `Authorization: BEARER` header), and ClusterClient failover
// from a dead replica to an in-process agent. No real SeaweedFS master is involved.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "client/cluster_client.h"
#include "client/master_lookup.h"
#include "http/http_server.h"
#include "protocol/file_id.h"
#include "protocol/jwt.h"
#include "protocol/needle.h"
#include "tests/generated_volume.h"
#include "tests/in_process_agent.h"
#include "tests/test_util.h"
#include "volume/ec_volume.h"
#include "volume/volume_generator.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;
using client::AgentDirectory;
using client::MasterClient;

// A loopback port nothing listens on (bound, then closed).
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

// The stand-in master: volume id -> volume server "host:port" list; a token for every fid when
// `token` is set.
class MasterStandIn {
 public:
  MasterStandIn() {
    auto s =
        agent::HttpServer::Start({}, [this](const agent::HttpRequest& r) { return Handle(r); });
    if (!s) throw std::runtime_error(s.error().ToString());
    server_ = std::move(*s);
  }
  std::string url() const { return fmt::format("http://127.0.0.1:{}", server_->ports()[0]); }
  void Set(uint32_t vid, std::vector<std::string> servers) {
    std::lock_guard lock(mu_);
    volumes_[vid] = std::move(servers);
  }
  std::atomic<int> lookups{0};
  std::atomic<int> token_requests{0};
  std::string token;  // set before use: this token for every fid
  std::string key;    // or: sign a token per fid with this key, as the master does

 private:
  agent::HttpResponse Handle(const agent::HttpRequest& r) {
    if (r.Path() != "/dir/lookup") return agent::HttpResponse::JsonError(404, "no such path");
    std::string q(r.Query());
    std::string id;
    bool read = q.find("read=yes") != std::string::npos;
    for (const char* key : {"volumeId=", "fileId="}) {
      if (auto p = q.find(key); p != std::string::npos) {
        id = q.substr(p + strlen(key));
        id = id.substr(0, id.find('&'));
      }
    }
    read ? ++token_requests : ++lookups;
    const std::string vid_text = id.substr(0, id.find(','));
    std::vector<std::string> servers;
    {
      std::lock_guard lock(mu_);
      auto it = volumes_.find(static_cast<uint32_t>(std::stoul(vid_text)));
      if (it != volumes_.end()) servers = it->second;
    }
    if (servers.empty()) {
      return agent::HttpResponse::Json(
          404, fmt::format(R"({{"volumeOrFileId":"{}","error":"volume id {} not found"}})", id,
                           vid_text));
    }
    std::string locs;
    for (const auto& s : servers) {
      locs += fmt::format(R"({}{{"url":"{}","publicUrl":"{}","dataCenter":"dc1","grpcPort":1}})",
                          locs.empty() ? "" : ",", s, s);
    }
    auto resp = agent::HttpResponse::Json(
        200, fmt::format(R"({{"volumeOrFileId":"{}","locations":[{}]}})", id, locs));
    if (read && !token.empty()) resp.headers.push_back({"Authorization", "BEARER " + token});
    if (read && !key.empty()) {
      resp.headers.push_back(
          {"Authorization", "BEARER " + SignReadJwt(id, key, std::time(nullptr) + 60)});
    }
    return resp;
  }

  std::mutex mu_;
  std::map<uint32_t, std::vector<std::string>> volumes_;
  std::unique_ptr<agent::HttpServer> server_;
};

TEST(DirLookupParse, LocationsErrorsAndGarbage) {
  auto ok = client::ParseDirLookup(
      200, R"({"volumeOrFileId":"3","locations":[{"url":"a:8080","publicUrl":"pa:8080",
              "dataCenter":"dc1","grpcPort":18080},{"url":"b:8081","publicUrl":"b:8081"}]})");
  ASSERT_TRUE(ok) << ok.error().ToString();
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[0].url, "a:8080");
  EXPECT_EQ((*ok)[0].public_url, "pa:8080");
  EXPECT_EQ((*ok)[0].data_center, "dc1");
  EXPECT_EQ((*ok)[1].url, "b:8081");

  auto unknown =
      client::ParseDirLookup(404, R"({"volumeOrFileId":"9","error":"volume id 9 not found"})");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), Code::kUnknownVolume);
  EXPECT_NE(unknown.error().message().find("volume id 9 not found"), std::string::npos);

  auto empty = client::ParseDirLookup(200, R"({"volumeOrFileId":"4","locations":[]})");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code(), Code::kUnknownVolume);

  auto garbage = client::ParseDirLookup(502, "<html>bad gateway</html>");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().code(), Code::kCorruption);
}

TEST(DirLookupParse, BearerTokenAnyCase) {
  EXPECT_EQ(client::BearerToken("BEARER abc.def.ghi"), "abc.def.ghi");
  EXPECT_EQ(client::BearerToken("Bearer  xyz "), "xyz");
  EXPECT_EQ(client::BearerToken(""), std::nullopt);
  EXPECT_EQ(client::BearerToken("Basic dXNlcg=="), std::nullopt);
  EXPECT_EQ(client::BearerToken("Bearer "), std::nullopt);
}

TEST(AgentDirectoryTest, HostPlusPortUnlessMapped) {
  auto d = AgentDirectory::Parse(18515, R"(# volume server      agent
10.0.0.5:8080   http://10.0.1.5:28515   # other interface
storage-7       storage-7-ib:18516

[::1]:8080      http://[::1]:19000
)",
                                 "test.map");
  ASSERT_TRUE(d) << d.error().ToString();
  EXPECT_EQ(d->mapped(), 3u);
  EXPECT_EQ(*d->AgentFor("10.0.0.5:8080"), "http://10.0.1.5:28515");
  EXPECT_EQ(*d->AgentFor("http://10.0.0.5:8080/"), "http://10.0.1.5:28515");
  EXPECT_EQ(*d->AgentFor("10.0.0.5:8081"), "http://10.0.0.5:18515");  // other port: derived
  EXPECT_EQ(*d->AgentFor("STORAGE-7:9999"), "http://storage-7-ib:18516");
  EXPECT_EQ(*d->AgentFor("http://[::1]:8080"), "http://[::1]:19000");
  EXPECT_EQ(*d->AgentFor("10.0.0.9:8080"), "http://10.0.0.9:18515");
  EXPECT_FALSE(d->AgentFor("http://:8080"));

  auto bad = AgentDirectory::Parse(18515, "ok:1 http://a:2\nonly-one-column\n", "x.map");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("x.map:2"), std::string::npos) << bad.error().ToString();
  auto missing = AgentDirectory::Create(18515, "/nonexistent/agents.map");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("/nonexistent/agents.map"), std::string::npos);
}

TEST(MasterStandIn, LookupIsCachedForgottenAndUnknownIsNamed) {
  MasterStandIn master;
  master.Set(3, {"127.0.0.1:8080", "127.0.0.2:8080"});
  auto m = MasterClient::Create({.master_url = master.url()});
  ASSERT_TRUE(m) << m.error().ToString();
  for (int i = 0; i < 3; ++i) {
    auto l = (*m)->Lookup(3);
    ASSERT_TRUE(l) << l.error().ToString();
    ASSERT_EQ(l->size(), 2u);
    EXPECT_EQ((*l)[1].url, "127.0.0.2:8080");
  }
  EXPECT_EQ(master.lookups.load(), 1);
  EXPECT_EQ((*m)->stats().cache_hits, 2u);
  (*m)->Forget(3);
  ASSERT_TRUE((*m)->Lookup(3));
  EXPECT_EQ(master.lookups.load(), 2);

  auto unknown = (*m)->Lookup(77);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), Code::kUnknownVolume);
  EXPECT_NE(unknown.error().message().find("volume id 77 not found"), std::string::npos)
      << unknown.error().ToString();
}

TEST(MasterStandIn, SecondMasterAnswersWhenTheFirstIsDown) {
  MasterStandIn master;
  master.Set(5, {"h:1"});
  auto m = MasterClient::Create(
      {.master_url = fmt::format("http://127.0.0.1:{},{}", DeadPort(), master.url())});
  ASSERT_TRUE(m);
  auto l = (*m)->Lookup(5);
  ASSERT_TRUE(l) << l.error().ToString();
  EXPECT_EQ(l->front().url, "h:1");

  auto none = MasterClient::Create({.master_url = fmt::format("127.0.0.1:{}", DeadPort())});
  ASSERT_TRUE(none);
  auto down = (*none)->Lookup(5);
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code(), Code::kUnavailable) << down.error().ToString();
}

TEST(MasterStandIn, ReadTokenFromTheAuthorizationHeader) {
  MasterStandIn master;
  master.Set(3, {"127.0.0.1:8080"});
  auto m = MasterClient::Create({.master_url = master.url()});
  ASSERT_TRUE(m);
  auto none = (*m)->ReadToken("3,01637037d6");
  ASSERT_TRUE(none) << none.error().ToString();
  EXPECT_EQ(*none, std::nullopt);  // the master signs no reads
  master.token = "eyJhbGciOiJIUzI1NiJ9.eyJmaWQiOiIzLDAxNjM3MDM3ZDYifQ.sig";
  auto t = (*m)->ReadToken("3,01637037d6");
  ASSERT_TRUE(t) << t.error().ToString();
  EXPECT_EQ(*t, master.token);
  EXPECT_EQ(master.token_requests.load(), 2);
  EXPECT_FALSE((*m)->ReadToken("3,not a fid&x=1"));  // never put into a URL
  auto unknown = (*m)->ReadToken("9,01637037d6");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), Code::kUnknownVolume);
}

// Issue 15 (7): the master signs the fileId as asked, the volume server compares the token with
// the fid without "_N": the token for fid_N is asked for the base fid, or weed refuses it.
TEST(MasterStandIn, ReadTokenOfAnNFidCoversIt) {
  MasterStandIn master;
  master.Set(3, {"127.0.0.1:8080"});
  master.key = "read-key";
  auto m = MasterClient::Create({.master_url = master.url()});
  ASSERT_TRUE(m);
  auto t = (*m)->ReadToken("3,01637037d6_2");
  ASSERT_TRUE(t && *t) << (t ? "no token" : t.error().ToString());
  auto claims = VerifyReadJwt(**t, "read-key", std::chrono::system_clock::now());
  ASSERT_TRUE(claims) << claims.error().ToString();
  EXPECT_EQ(claims->fid, "3,01637037d6");
  EXPECT_TRUE(CheckFidClaim(*claims, "3,01637037d6_2").ok());
}

using Expected = testing::ExpectedNeedle;

class ClusterFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(tmp_ / "vols");
    GenerateOptions o;
    o.dir = tmp_ / "vols";
    o.volume_id = 7;
    o.needles = 120;
    o.min_size = 1;
    o.max_size = 20'000;
    o.gzip_fraction = 0.3;
    o.delete_fraction = 0.1;
    o.seed = 5;
    testing::GenerateExpected(o, expected_);
    ASSERT_FALSE(expected_.empty());
    agent_ = std::make_unique<testing::InProcessAgent>(std::vector<fs::path>{tmp_ / "vols"},
                                                       tmp_ / "index");
    // Two "volume servers": the first's agent is a dead port, the second's the live agent.
    std::ofstream map(tmp_ / "agents.map");
    map << "# test map\n127.0.0.1:1001 http://127.0.0.1:" << DeadPort() << "\n"
        << "127.0.0.1:1002 " << agent_->url() << "\n";
  }
  client::ClusterClientOptions Options() {
    client::ClusterClientOptions o;
    o.master.master_url = master_.url();
    o.agent_map = (tmp_ / "agents.map").string();
    o.client.transports = "tcp";
    o.client.timeout = std::chrono::seconds(5);
    return o;
  }

  testing::TempDir tmp_;
  std::map<std::string, Expected> expected_;
  std::unique_ptr<testing::InProcessAgent> agent_;
  MasterStandIn master_;
};

TEST_F(ClusterFailoverTest, DeadFirstReplicaFailsOverToTheLiveAgent) {
  master_.Set(7, {"127.0.0.1:1001", "127.0.0.1:1002"});
  auto c = client::ClusterClient::Create(Options());
  ASSERT_TRUE(c) << c.error().ToString();
  auto agents = (*c)->AgentsFor(7);
  ASSERT_TRUE(agents);
  ASSERT_EQ(agents->size(), 2u);
  EXPECT_EQ((*agents)[1], agent_->url());

  std::vector<std::string> fids;
  for (const auto& [fid, e] : expected_)
    fids.push_back(fid);
  fids.push_back("7,ffff0000aaaa");  // not in the volume: a verified not-found
  auto results = (*c)->ReadMany(fids);
  ASSERT_EQ(results.size(), fids.size());
  for (size_t i = 0; i + 1 < fids.size(); ++i) {
    const Expected& e = expected_[fids[i]];
    if (e.deleted) {
      ASSERT_FALSE(results[i]) << fids[i];
      EXPECT_EQ(results[i].error().code(), Code::kDeleted) << results[i].error().ToString();
      continue;
    }
    ASSERT_TRUE(results[i]) << fids[i] << ": " << results[i].error().ToString();
    EXPECT_EQ(results[i]->data, e.data) << fids[i];
  }
  ASSERT_FALSE(results.back());
  EXPECT_EQ(results.back().error().code(), Code::kNotFound) << results.back().error().ToString();
  EXPECT_EQ((*c)->stats().failovers, fids.size());
  EXPECT_EQ((*c)->stats().connect_failures, 1u);
  EXPECT_EQ(master_.lookups.load(), 1);

  // The dead agent is now tried last: the next read goes straight to the live one.
  auto again = (*c)->Read(fids[0]);
  EXPECT_EQ(again.has_value(), !expected_[fids[0]].deleted);
  EXPECT_EQ((*c)->stats().failovers, fids.size());
}

TEST_F(ClusterFailoverTest, EveryReplicaDeadNamesEachAgentTried) {
  master_.Set(7, {"127.0.0.1:1001", "127.0.0.1:1003"});  // 1003: derived agent port, dead too
  auto o = Options();
  o.agent_port = DeadPort();
  auto c = client::ClusterClient::Create(o);
  ASSERT_TRUE(c);
  auto r = (*c)->Read(expected_.begin()->first);
  ASSERT_FALSE(r);
  const std::string msg = r.error().ToString();
  EXPECT_NE(msg.find("2 tried"), std::string::npos) << msg;
  EXPECT_NE(msg.find("volume server 127.0.0.1:1001"), std::string::npos) << msg;
  EXPECT_NE(msg.find(fmt::format("http://127.0.0.1:{}", o.agent_port)), std::string::npos) << msg;
  EXPECT_EQ(r.error().code(), Code::kUnavailable) << msg;

  // Unknown volume at the master: named as such, no agent contacted.
  auto unknown = (*c)->Read("99,01637037d6");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), Code::kUnknownVolume) << unknown.error().ToString();
}

TEST_F(ClusterFailoverTest, ReadTokensAreFetchedPerFidWhenAskedFor) {
  master_.Set(7, {"127.0.0.1:1002"});
  master_.token = "tok";
  auto o = Options();
  o.read_tokens = true;
  auto c = client::ClusterClient::Create(o);
  ASSERT_TRUE(c);
  std::vector<std::string> live;
  for (const auto& [fid, e] : expected_) {
    if (!e.deleted && live.size() < 5) live.push_back(fid);
  }
  auto results = (*c)->ReadMany(live);
  for (size_t i = 0; i < live.size(); ++i) {
    // An agent that checks tokens would refuse "tok" (permission denied, not failed over); one
    // that does not, reads. Either way the token was asked for once per fid.
    if (!results[i]) {
      EXPECT_EQ(results[i].error().code(), Code::kPermissionDenied)
          << results[i].error().ToString();
    } else {
      EXPECT_EQ(results[i]->data, expected_[live[i]].data);
    }
  }
  EXPECT_EQ(master_.token_requests.load(), 5);
  EXPECT_EQ((*c)->stats().tokens, 5u);
  EXPECT_EQ((*c)->stats().failovers, 0u);
}

// Volume servers with [jwt.signing.read]: without tokens the agent refuses (final: every replica
// shares the key, so no failover); with --read-tokens the master's per-fid tokens open it.
TEST_F(ClusterFailoverTest, SecuredAgentReadsWithTheMastersTokens) {
  const std::string key = "cluster-test-key";
  testing::InProcessAgent secured({tmp_ / "vols"}, tmp_ / "index-jwt",
                                  testing::InProcessAgentOptions{.jwt_read_key = key});
  {
    std::ofstream map(tmp_ / "agents.map", std::ios::app);
    map << "127.0.0.1:1004 " << secured.url() << "\n";
  }
  master_.Set(7, {"127.0.0.1:1004", "127.0.0.1:1002"});
  master_.key = key;
  std::vector<std::string> live;
  for (const auto& [fid, e] : expected_) {
    if (!e.deleted && live.size() < 6) live.push_back(fid);
  }
  auto plain = client::ClusterClient::Create(Options());
  ASSERT_TRUE(plain);
  auto refused = (*plain)->Read(live[0]);
  ASSERT_FALSE(refused) << "the secured agent served a read without a token";
  EXPECT_EQ(refused.error().code(), Code::kPermissionDenied) << refused.error().ToString();
  EXPECT_EQ((*plain)->stats().failovers, 0u);  // not retried on the open replica

  auto o = Options();
  o.read_tokens = true;
  auto c = client::ClusterClient::Create(o);
  ASSERT_TRUE(c);
  auto results = (*c)->ReadMany(live);
  for (size_t i = 0; i < live.size(); ++i) {
    ASSERT_TRUE(results[i]) << live[i] << ": " << results[i].error().ToString();
    EXPECT_EQ(results[i]->data, expected_[live[i]].data) << live[i];
  }
  EXPECT_EQ((*c)->stats().tokens, live.size());
  EXPECT_EQ((*c)->stats().failovers, 0u);
}

// An EC volume over two servers as ec.encode and ec.balance leave it: volume `o.volume_id`
// generated in tmp/src, encoded into tmp/a, the shards `to_b` moved to tmp/b beside copies of
// the .ecx, .ecj and .vif (weed copies them with the shards). `places` gets, for every live
// needle, its fid and the first and last shard its record lies in.
struct EcPlace {
  std::string fid;
  uint64_t first_shard = 0, last_shard = 0;
};
void SplitEcVolume(const fs::path& tmp, GenerateOptions o, std::initializer_list<uint32_t> to_b,
                   std::map<std::string, Expected>& expected, std::vector<EcPlace>& places) {
  for (const char* d : {"src", "a", "b"})
    fs::create_directories(tmp / d);
  o.dir = tmp / "src";
  const auto gen = testing::GenerateExpected(o, expected);
  const std::string base = std::to_string(o.volume_id);
  ASSERT_TRUE(ec::EncodeEcVolume(gen.dat, gen.idx, tmp / "a", base, {}).ok());
  for (const char* ext : {".ecx", ".ecj", ".vif"})
    fs::copy_file(tmp / "a" / (base + ext), tmp / "b" / (base + ext));
  for (uint32_t s : to_b)
    fs::rename(tmp / "a" / (base + ec::ShardExtension(s)),
               tmp / "b" / (base + ec::ShardExtension(s)));
  // From the .ecx and the uniform layout (one block a shard).
  const uint64_t block = ec::UniformBlockSize(fs::file_size(gen.dat), 10);
  std::ifstream ecx_in(tmp / "a" / (base + ".ecx"), std::ios::binary);
  const std::vector<uint8_t> ecx((std::istreambuf_iterator<char>(ecx_in)), {});
  for (const auto& [fid, e] : expected) {
    if (e.deleted) continue;
    const auto entry = ec::FindInSortedIndex(ecx, OffsetWidth::k4, ParseFileId(fid)->needle_id);
    ASSERT_TRUE(entry) << fid;
    const uint64_t end = entry->offset + NeedleRecordLength(entry->size, NeedleVersion::kV3);
    places.push_back({fid, entry->offset / block, (end - 1) / block});
  }
}

// An agent's EC pieces decide how much the client allocates for the record before anything is
// verified: only the length a needle of their size and version has is taken, up to a limit.
TEST(ClusterEc, PiecesOfAnImpossibleRecordAreRefused) {
  client::EcRecordPieces p;
  p.needle_size = 1000;
  p.needle_version = 3;
  p.record_length = NeedleRecordLength(1000, NeedleVersion::kV3);
  EXPECT_TRUE(client::CheckEcRecordShape(p, uint64_t{1} << 30).ok());
  for (uint64_t lie : {p.record_length + 8, p.record_length - 8, uint64_t{0}, uint64_t{4} << 30}) {
    client::EcRecordPieces q = p;
    q.record_length = lie;
    const Status s = client::CheckEcRecordShape(q, uint64_t{1} << 30);
    EXPECT_EQ(s.code(), Code::kCorruption) << lie;
  }
  client::EcRecordPieces big = p;  // a real shape, past the limit
  big.needle_size = 0xfffffff0u;
  big.record_length = NeedleRecordLength(big.needle_size, NeedleVersion::kV3);
  EXPECT_EQ(client::CheckEcRecordShape(big, uint64_t{1} << 30).code(), Code::kCorruption);
  client::EcRecordPieces v9 = p;
  v9.needle_version = 9;
  EXPECT_EQ(client::CheckEcRecordShape(v9, uint64_t{1} << 30).code(), Code::kCorruption);
}

// Issue 16: an EC volume whose shards two servers share (as ec.encode spreads them). The master
// lists both for the volume; a needle whose record lies in one server's shards is read from that
// server's agent (the other refuses it as unknown there, naming the shards, and the client tries
// the next holder); a needle across the two servers' shards is a clear error, never wrong bytes.
// (Neither server holds the ten shards it would take to rebuild the others from parity:
// ec_read_test's LostDataShardsAreRebuiltFromParity.)
TEST(ClusterEc, NeedlesAreReadFromTheServerHoldingTheirShards) {
  testing::TempDir tmp;
  GenerateOptions o;
  o.volume_id = 9;
  o.needles = 50;
  o.min_size = 100 * 1024;
  o.max_size = 400 * 1024;
  o.seed = 9;
  std::map<std::string, Expected> expected;
  std::vector<EcPlace> places;
  // Server b: shards 5..13; server a keeps 0..4.
  ASSERT_NO_FATAL_FAILURE(
      SplitEcVolume(tmp.path(), o, {5, 6, 7, 8, 9, 10, 11, 12, 13}, expected, places));
  testing::InProcessAgent a({tmp / "a"}, tmp / "index-a");
  testing::InProcessAgent b({tmp / "b"}, tmp / "index-b");
  std::ofstream(tmp / "agents.map")
      << "127.0.0.1:1001 " << a.url() << "\n127.0.0.1:1002 " << b.url() << "\n";
  MasterStandIn master;
  master.Set(9, {"127.0.0.1:1001", "127.0.0.1:1002"});
  client::ClusterClientOptions co;
  co.master.master_url = master.url();
  co.agent_map = (tmp / "agents.map").string();
  co.client.transports = "tcp";
  co.client.timeout = std::chrono::seconds(5);
  auto c = client::ClusterClient::Create(co);
  ASSERT_TRUE(c) << c.error().ToString();

  // Which server holds each record whole.
  std::vector<std::string> fids;
  std::vector<int> holder;  // 0: a, 1: b, -1: both (split)
  for (const EcPlace& p : places) {
    const int first = p.first_shard < 5 ? 0 : 1, last = p.last_shard < 5 ? 0 : 1;
    fids.push_back(p.fid);
    holder.push_back(first == last ? first : -1);
  }
  auto results = (*c)->ReadMany(fids);
  size_t from_a = 0, from_b = 0, split = 0;
  for (size_t i = 0; i < fids.size(); ++i) {
    if (holder[i] < 0) {
      ASSERT_FALSE(results[i]) << fids[i] << " spans both servers' shards";
      EXPECT_NE(results[i].error().message().find("not on this server"), std::string::npos)
          << results[i].error().ToString();
      ++split;
      continue;
    }
    ASSERT_TRUE(results[i]) << fids[i] << ": " << results[i].error().ToString();
    EXPECT_EQ(results[i]->data, expected.at(fids[i]).data) << fids[i];
    (holder[i] == 0 ? from_a : from_b) += 1;
  }
  EXPECT_GT(from_a, 0u);
  EXPECT_GT(from_b, 0u);
  EXPECT_LE(split, 1u) << "at most the record across the shard 4 -> 5 boundary";
}

// Issue 16: ec.encode spreads a volume's shards over servers; here server a holds the even data
// shards and b the odd ones (and two parity shards each: neither can rebuild the other's). A
// needle across a shard boundary lies on both: each agent sends the pieces it holds (with a read
// token; without tokens only the agent holding the needle's header, which checks its cookie,
// sends any) and the client assembles the record and verifies it whole. Damaged shard bytes are
// an error, never wrong bytes.
// Over the agents' TCP read ports and over UCX shared memory.
class ClusterEcPieces : public ::testing::TestWithParam<std::tuple<bool, std::string>> {};

TEST_P(ClusterEcPieces, NeedlesAcrossServersAreAssembledFromThePiecesOfEach) {
  const bool tokens = std::get<0>(GetParam());
  const std::string key = "ec-pieces-key";
  testing::TempDir tmp;
  GenerateOptions o;
  o.volume_id = 11;
  o.needles = 60;
  o.min_size = 100 * 1024;
  o.max_size = 500 * 1024;
  o.gzip_fraction = 0.2;
  o.seed = 11;
  std::map<std::string, Expected> expected;
  std::vector<EcPlace> places;
  ASSERT_NO_FATAL_FAILURE(SplitEcVolume(tmp.path(), o, {1, 3, 5, 7, 9, 12, 13}, expected, places));
  testing::InProcessAgentOptions ao;
  if (tokens) ao.jwt_read_key = key;
  testing::InProcessAgent a({tmp / "a"}, tmp / "index-a", ao);
  testing::InProcessAgent b({tmp / "b"}, tmp / "index-b", ao);
  std::ofstream(tmp / "agents.map")
      << "127.0.0.1:1001 " << a.url() << "\n127.0.0.1:1002 " << b.url() << "\n";
  MasterStandIn master;
  master.Set(11, {"127.0.0.1:1001", "127.0.0.1:1002"});
  if (tokens) master.key = key;
  client::ClusterClientOptions co;
  co.master.master_url = master.url();
  co.agent_map = (tmp / "agents.map").string();
  co.client.transports = std::get<1>(GetParam());
  co.client.timeout = std::chrono::seconds(5);
  co.read_tokens = tokens;
  auto c = client::ClusterClient::Create(co);
  ASSERT_TRUE(c) << c.error().ToString();

  // Records across a shard boundary lie on both servers (the data shards alternate).
  std::vector<std::string> fids;
  std::vector<bool> split;
  std::vector<uint64_t> first_shard;
  for (const EcPlace& p : places) {
    fids.push_back(p.fid);
    first_shard.push_back(p.first_shard);
    split.push_back(p.first_shard != p.last_shard);
  }
  const size_t splits = static_cast<size_t>(std::count(split.begin(), split.end(), true));
  ASSERT_GE(splits, 3u) << "the volume must have needles across shard boundaries";

  auto results = (*c)->ReadMany(fids);
  size_t assembled = 0, refused = 0;
  for (size_t i = 0; i < fids.size(); ++i) {
    // Without tokens every needle across the servers is refused: the agent holding its header
    // checks the cookie and sends its pieces, the other cannot and sends none.
    if (split[i] && !tokens) {
      ASSERT_FALSE(results[i]) << fids[i] << " was assembled without a read token";
      EXPECT_EQ(results[i].error().code(), Code::kUnknownVolume) << results[i].error().ToString();
      EXPECT_NE(results[i].error().message().find("without read tokens"), std::string::npos)
          << results[i].error().ToString();
      ++refused;
      continue;
    }
    ASSERT_TRUE(results[i]) << fids[i] << ": " << results[i].error().ToString();
    EXPECT_EQ(results[i]->data, expected.at(fids[i]).data) << fids[i];
    assembled += split[i] ? 1 : 0;
  }
  EXPECT_EQ((*c)->stats().ec_assembled, tokens ? splits : 0u);
  EXPECT_EQ(assembled + refused, splits);
  if (!tokens) return;

  // A damaged byte in b's part of a split needle (shard files change under the agent: a disk
  // error) makes that needle an error; never wrong bytes.
  size_t victim = fids.size();
  for (size_t i = 0; i < fids.size() && victim == fids.size(); ++i)
    if (split[i] && first_shard[i] % 2 == 0) victim = i;  // header on a, tail on b
  ASSERT_LT(victim, fids.size());
  const uint64_t tail_shard = first_shard[victim] + 1;
  {
    // The tail starts at offset 0 of the next shard (the uniform layout: one block a shard).
    std::fstream f(tmp / "b" / ("11" + ec::ShardExtension(static_cast<uint32_t>(tail_shard))),
                   std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f);
    char byte = 0;
    f.seekg(8);
    f.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x5a);
    f.seekp(8);
    f.write(&byte, 1);
  }
  auto damaged = (*c)->Read(fids[victim]);
  ASSERT_FALSE(damaged) << fids[victim] << ": damaged bytes were returned";
  EXPECT_EQ(damaged.error().code(), Code::kChecksumMismatch) << damaged.error().ToString();
}

INSTANTIATE_TEST_SUITE_P(Modes, ClusterEcPieces,
                         ::testing::Combine(::testing::Bool(),
                                            ::testing::Values("tcp", "posix,sysv,cma")),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "ReadTokens" : "Open") +
                                  (std::get<1>(info.param) == "tcp" ? "_tcp" : "_shm");
                         });

}  // namespace
}  // namespace swrdma
