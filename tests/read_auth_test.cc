// Read authorization with SeaweedFS read tokens and the exposure modes, end to end: an
// in-process agent with a read key, raw HTTP requests for the token matrix, and the client
// library reading over tcp and shared memory through checked reads, never holding an agent rkey.
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/read_auth.h"
#include "client/agent_http.h"
#include "client/client.h"
#include "protocol/file_id.h"
#include "protocol/jwt.h"
#include "protocol/messages.h"
#include "protocol/wire.h"
#include "tests/generated_volume.h"
#include "tests/in_process_agent.h"
#include "tests/test_util.h"
#include "volume/volume_generator.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kKey = "volume-read-signing-key";
constexpr std::string_view kWrongJwtBody = R"({"error":"wrong jwt"})";

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Volume {
  std::vector<std::string> live;  // fids
  std::map<std::string, std::vector<uint8_t>> data;
};

Volume Generate(const fs::path& dir, uint32_t vid, uint64_t n, uint64_t min, uint64_t max,
                uint64_t seed) {
  GenerateOptions o;
  o.dir = dir;
  o.volume_id = vid;
  o.needles = n;
  o.min_size = min;
  o.max_size = max;
  o.gzip_fraction = 0;
  o.delete_fraction = 0;
  o.seed = seed;
  testing::ExpectedNeedles expected;
  testing::GenerateExpected(o, expected);
  Volume v;
  for (auto& [fid, e] : expected) {
    v.live.push_back(fid);
    v.data[fid] = std::move(e.data);
  }
  return v;
}

// The value of an unlabelled (or fully labelled, e.g. `x{result="ok"}`) series in /metrics text.
double Metric(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

// Every token that must be refused for `fid`, by name.
std::vector<std::pair<std::string, std::string>> BadTokens(const std::string& fid,
                                                           const std::string& other_fid) {
  const std::string claims = Base64UrlEncode(fmt::format(R"({{"fid":"{}"}})", fid));
  return {
      {"none", ""},
      {"expired", SignReadJwt(fid, kKey, Now() - 10)},
      {"not yet valid", SignReadJwt(fid, kKey, Now() + 600, Now() + 300)},
      {"wrong key", SignReadJwt(fid, "some-other-key", Now() + 60)},
      {"alg none", Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." + claims + "."},
      {"other fid", SignReadJwt(other_fid, kKey, Now() + 60)},
      {"garbage", "not.a.token"},
  };
}

class ReadAuthTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fs::create_directories(tmp_ / "vols");
    small_ = Generate(tmp_ / "vols", 3, 40, 1, 16 * 1024, 5);
    other_ = Generate(tmp_ / "vols", 4, 5, 1, 1024, 6);
  }
  testing::InProcessAgentOptions AgentOptions(std::string exposure, bool auth) {
    testing::InProcessAgentOptions o;
    o.exposure = std::move(exposure);
    if (auth) o.jwt_read_key = std::string(kKey);
    return o;
  }
  client::ClientOptions ClientFor(const testing::InProcessAgent& agent) {
    client::ClientOptions o;
    o.agent_url = agent.url();
    o.transports = "tcp";
    o.timeout = std::chrono::seconds(10);
    return o;
  }
  static client::AgentHttp Http(const testing::InProcessAgent& agent) {
    return client::AgentHttp(*client::ParseHttpUrl(agent.url(), 0), std::chrono::seconds(10));
  }
  static std::string LookupBody(const std::string& fid, const std::string& token) {
    LookupRequest req{{fid}, {}};
    if (!token.empty()) req.jwts = {token};
    return ToJson(req).dump();
  }

  testing::TempDir tmp_;
  Volume small_, other_;
};

TEST_P(ReadAuthTest, EveryBadTokenIsAnswered401WithNothingElse) {
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", AgentOptions(GetParam(), true));
  auto http = Http(agent);
  auto client = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(client) << client.error().ToString();
  const std::string& fid = small_.live[0];
  for (const auto& [name, token] : BadTokens(fid, small_.live[1])) {
    SCOPED_TRACE(name);
    auto lookup = http.Request("POST", "/v1/lookup", LookupBody(fid, token), "application/json",
                               "application/json");
    ASSERT_TRUE(lookup);
    EXPECT_EQ(lookup->status, 401);
    EXPECT_EQ(lookup->body, kWrongJwtBody);
    auto get = http.Request("GET", token.empty() ? "/" + fid : "/" + fid + "?jwt=" + token);
    ASSERT_TRUE(get);
    EXPECT_EQ(get->status, 401);
    EXPECT_EQ(get->body, kWrongJwtBody);
    auto bearer =
        http.Request("GET", "/" + fid, {}, {}, {}, {{"Authorization", "Bearer " + token}});
    ASSERT_TRUE(bearer);
    EXPECT_EQ(bearer->status, 401);
    EXPECT_EQ(bearer->body, kWrongJwtBody);

    client::ReadOptions ro;
    ro.jwt = token;
    auto read = (*client)->Read(fid, ro);
    ASSERT_FALSE(read.has_value());
    EXPECT_EQ(read.error().code(), Code::kPermissionDenied) << read.error().ToString();
    EXPECT_NE(read.error().message().find("wrong jwt"), std::string::npos);
  }
  // A batch with one bad token among good ones is refused whole.
  LookupRequest mixed{{small_.live[0], small_.live[1]},
                      {SignReadJwt(small_.live[0], kKey, Now() + 60), "garbage"}};
  auto batch = http.Request("POST", "/v1/lookup", ToJson(mixed).dump(), "application/json",
                            "application/json");
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->status, 401);
  EXPECT_EQ(batch->body, kWrongJwtBody);

  auto metrics = http.Request("GET", "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_GE(Metric(metrics->body, "swrdma_read_tokens_denied_total"), 7 * 3) << metrics->body;
}

TEST_P(ReadAuthTest, ValidTokensReadCorrectBytesEveryWay) {
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", AgentOptions(GetParam(), true));
  auto http = Http(agent);
  const std::string& fid = small_.live[2];
  const std::string token = SignReadJwt(fid, kKey, Now() + 60);
  const std::string expected(small_.data[fid].begin(), small_.data[fid].end());

  auto lookup = http.Request("POST", "/v1/lookup", LookupBody(fid, token), "application/json",
                             "application/json");
  ASSERT_TRUE(lookup);
  ASSERT_EQ(lookup->status, 200) << lookup->body;
  auto answer = LookupResponseFromJson(nlohmann::json::parse(lookup->body));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->results[0].status, LookupStatus::kOk);
  // Checked exposure: where a record lives in the agent's memory is not told.
  EXPECT_EQ(answer->results[0].address == 0, GetParam() == "checked");

  // Tokens longer than any fid are within the request limits: a valid token for a (malformed,
  // 302-character) fid passes authorization and the fid gets its own answer.
  const std::string long_fid = "3," + std::string(300, 'a');
  auto long_token = http.Request("POST", "/v1/lookup",
                                 LookupBody(long_fid, SignReadJwt(long_fid, kKey, Now() + 60)),
                                 "application/json", "application/json");
  ASSERT_TRUE(long_token);
  ASSERT_EQ(long_token->status, 200) << long_token->body;
  auto long_answer = LookupResponseFromJson(nlohmann::json::parse(long_token->body));
  ASSERT_TRUE(long_answer);
  EXPECT_EQ(long_answer->results[0].status, LookupStatus::kBadFid);

  for (const auto& [how, target, headers] : std::vector<
           std::tuple<std::string, std::string, std::vector<std::pair<std::string, std::string>>>>{
           {"query", "/" + fid + "?jwt=" + token, {}},
           {"bearer", "/" + fid, {{"Authorization", "BEARER " + token}}},
           {"cookie", "/" + fid, {{"Cookie", "lang=en; AT=" + token}}}}) {
    SCOPED_TRACE(how);
    auto get = http.Request("GET", target, {}, {}, {}, headers);
    ASSERT_TRUE(get);
    EXPECT_EQ(get->status, 200) << get->body.substr(0, 200);
    EXPECT_TRUE(get->body == expected) << "wrong bytes";
  }
  // "_N" reads needle key+N (another needle: 404 here), and the token is checked without it, as
  // on the volume server: not a 401.
  auto delta = http.Request("GET", "/" + fid + "_1?jwt=" + token);
  ASSERT_TRUE(delta);
  EXPECT_NE(delta->status, 401) << delta->body.substr(0, 200);

  // The client library: one token per fid, batched.
  auto client = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(client) << client.error().ToString();
  client::ReadOptions ro;
  for (const auto& f : small_.live)
    ro.jwts.push_back(SignReadJwt(f, kKey, Now() + 60));
  auto reads = (*client)->ReadMany(small_.live, ro);
  for (size_t i = 0; i < small_.live.size(); ++i) {
    ASSERT_TRUE(reads[i]) << small_.live[i] << ": " << reads[i].error().ToString();
    EXPECT_EQ(reads[i]->data, small_.data[small_.live[i]]);
    EXPECT_EQ(reads[i]->via, "rdma");
  }
}

TEST_P(ReadAuthTest, KeysStayHomeWhenTokensAreOn) {
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", AgentOptions(GetParam(), true));
  auto http = Http(agent);
  auto list = http.Request("GET", "/v1/volumes", {}, {}, "application/json");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200);
  auto volumes = VolumeListFromJson(nlohmann::json::parse(list->body));
  ASSERT_TRUE(volumes);
  ASSERT_EQ(volumes->volumes.size(), 2u);
  for (const auto& v : volumes->volumes)
    EXPECT_TRUE(v.regions.empty()) << "volume " << v.volume_id << " listed with its rkey";

  auto no_token = http.Request("GET", "/v1/volumes/3", {}, {}, "application/json");
  ASSERT_TRUE(no_token);
  auto other_volume =
      http.Request("GET", "/v1/volumes/3?jwt=" + SignReadJwt(other_.live[0], kKey, Now() + 60), {},
                   {}, "application/json");
  ASSERT_TRUE(other_volume);
  auto good =
      http.Request("GET", "/v1/volumes/3?jwt=" + SignReadJwt(small_.live[0], kKey, Now() + 60), {},
                   {}, "application/json");
  ASSERT_TRUE(good);
  if (GetParam() == "region") {
    EXPECT_EQ(no_token->status, 401);
    EXPECT_EQ(no_token->body, kWrongJwtBody);
    EXPECT_EQ(other_volume->status, 401);
    ASSERT_EQ(good->status, 200);
    auto d = VolumeDescriptorFromJson(nlohmann::json::parse(good->body));
    ASSERT_TRUE(d);
    EXPECT_EQ(d->regions.size(), 1u);
  } else {
    for (const auto* r : {&*no_token, &*other_volume, &*good}) {
      ASSERT_EQ(r->status, 200);
      auto d = VolumeDescriptorFromJson(nlohmann::json::parse(r->body));
      ASSERT_TRUE(d);
      EXPECT_TRUE(d->regions.empty());
      EXPECT_EQ(r->body.find("rkey"), std::string::npos);
    }
  }
  auto sample = http.Request("GET", "/v1/volumes/3/sample?n=5", {}, {}, "application/json");
  ASSERT_TRUE(sample);
  EXPECT_EQ(sample->status, 401);
}

// "region" here is what the HTTP API of an agent with a key-enforcing NIC does (in-process agent);
// the reads themselves are checked reads in both.
INSTANTIATE_TEST_SUITE_P(Exposure, ReadAuthTest, ::testing::Values("region", "checked"));

// The default (checked) exposure without tokens, over tcp and shared memory: every byte right,
// records larger than one message included, and no agent key anywhere on the wire.
class CheckedExposureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CheckedExposureTest, ReadsWithoutEverHoldingAnAgentKey) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  Volume small = Generate(tmp / "vols", 5, 200, 1, 64 * 1024, 21);
  Volume big = Generate(tmp / "vols", 6, 3, 3 << 20, 6 << 20, 22);  // several messages each
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");

  client::ClientOptions co;
  co.agent_url = agent.url();
  co.transports = GetParam();
  co.timeout = std::chrono::seconds(20);
  auto client = client::Client::Connect(co);
  ASSERT_TRUE(client) << client.error().ToString();
  EXPECT_EQ((*client)->agent_info().exposure, "checked");

  for (const Volume* v : {&small, &big}) {
    auto reads = (*client)->ReadMany(v->live);
    for (size_t i = 0; i < v->live.size(); ++i) {
      ASSERT_TRUE(reads[i]) << v->live[i] << ": " << reads[i].error().ToString();
      EXPECT_EQ(reads[i]->data, v->data.at(v->live[i])) << v->live[i];
    }
  }
  auto one = (*client)->Read(small.live[7]);
  ASSERT_TRUE(one) << one.error().ToString();
  EXPECT_EQ(one->data, small.data[small.live[7]]);
  auto missing = (*client)->Read("5,00000000ffffffff");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound);

  // What the agent answers to anyone in checked exposure carries no key.
  client::AgentHttp http(*client::ParseHttpUrl(agent.url(), 0), std::chrono::seconds(10));
  auto metrics = http.Request("GET", "/metrics");
  ASSERT_TRUE(metrics);
  // Checked reads over UCX or over the agent's TCP read port (a tcp client takes the latter).
  auto both = [&](const std::string& what) {
    return Metric(metrics->body, "swrdma_checked_read_" + what) +
           Metric(metrics->body, "swrdma_tcp_read_" + what);
  };
  EXPECT_GE(both(R"(requests_total{result="served"})"), 3);
  EXPECT_EQ(both(R"(requests_total{result="malformed"})"), 0);
  EXPECT_GE(both(R"(fids_total{answer="sent"})"), small.live.size() + big.live.size() + 1);
  EXPECT_EQ(both(R"(fids_total{answer="refused"})"), 1);
  EXPECT_GT(both("bytes_total"), 9 << 20);
  for (const char* target : {"/v1/info", "/v1/volumes", "/v1/volumes/5", "/v1/volumes/6"}) {
    auto r = http.Request("GET", target, {}, {}, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << target;
    EXPECT_EQ(r->body.find("rkey"), std::string::npos) << target << ": " << r->body;
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, CheckedExposureTest,
                         ::testing::Values(std::string("tcp"), std::string("posix,sysv,cma")),
                         [](const auto& info) {
                           return info.param == "tcp" ? std::string("tcp") : std::string("shm");
                         });

// Push (the agent writing into client memory) needs a NIC that enforces the client's keys: over
// UCX it would be emulated by handlers that serve any address, so /v1/push is gone (501) whatever
// the body or the exposure asked for, and the answer says what to do.
TEST(PushRequests, AreAnswered501WithWhatToDo) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  Volume v = Generate(tmp / "vols", 5, 3, 1, 100, 1);
  for (const char* exposure : {"checked", "push"}) {
    SCOPED_TRACE(exposure);
    testing::InProcessAgentOptions ao;
    ao.exposure = exposure;
    testing::InProcessAgent agent({tmp / "vols"}, tmp / ("index-" + std::string(exposure)), ao);
    client::AgentHttp http(*client::ParseHttpUrl(agent.url(), 0), std::chrono::seconds(10));
    const std::string fid_batch = ToJson(LookupRequest{{v.live[0]}, {}}).dump();
    for (const std::string& body : {std::string("{}"), std::string("garbage"), fid_batch}) {
      auto r = http.Request("POST", "/v1/push", body, "application/json", "application/json");
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 501) << body << " -> " << r->body;
      EXPECT_NE(r->body.find("push reads go over verbs"), std::string::npos) << r->body;
    }
    auto get = http.Request("GET", "/v1/push");
    ASSERT_TRUE(get);
    EXPECT_EQ(get->status, 501);
  }
}

TEST(SecurityToml, KeyIsReadAndReloaded) {
  testing::TempDir tmp;
  const fs::path toml = tmp / "security.toml";
  auto write = [&](std::string_view text) { std::ofstream(toml) << text; };
  write(
      "[jwt.signing]\nkey = \"write-key\"\n\n[jwt.signing.read]\nkey = \"read-one\"\n"
      "expires_after_seconds = 60\n");
  auto auth = agent::ReadAuthorizer::Open({std::nullopt, toml});
  ASSERT_TRUE(auth) << auth.error().ToString();
  EXPECT_TRUE((*auth)->enabled());
  const std::string fid = "3,01637037d6";
  EXPECT_TRUE((*auth)->Check(SignReadJwt(fid, "read-one", Now() + 60), fid).ok());
  EXPECT_FALSE((*auth)->Check(SignReadJwt(fid, "write-key", Now() + 60), fid).ok());

  write("[jwt.signing.read]\nkey = \"read-two\"\n");
  ASSERT_TRUE((*auth)->Reload().ok());
  EXPECT_FALSE((*auth)->Check(SignReadJwt(fid, "read-one", Now() + 60), fid).ok());
  EXPECT_TRUE((*auth)->Check(SignReadJwt(fid, "read-two", Now() + 60), fid).ok());

  write("[jwt.signing.read\nkey = ");  // broken: the key in force stays
  Status bad = (*auth)->Reload();
  EXPECT_EQ(bad.code(), Code::kInvalidArgument);
  EXPECT_NE(bad.message().find("security.toml"), std::string::npos) << bad.message();
  EXPECT_TRUE((*auth)->Check(SignReadJwt(fid, "read-two", Now() + 60), fid).ok());

  write("[jwt.signing.read]\nkey = \"\"\n");  // emptied: authorization off, as on the server
  ASSERT_TRUE((*auth)->Reload().ok());
  EXPECT_FALSE((*auth)->enabled());
  EXPECT_TRUE((*auth)->Check("", fid).ok());
  // A key given directly wins and is not reloaded from the file.
  auto flag = agent::ReadAuthorizer::Open({std::string("flag-key"), toml});
  ASSERT_TRUE(flag);
  EXPECT_TRUE((*flag)->Check(SignReadJwt(fid, "flag-key", Now() + 60), fid).ok());
}

// Issue 15 (11): the key is found where weed finds it (weed/util/config.go): the env
// WEED_JWT_SIGNING_READ_KEY over security.toml, the file searched in ., ~/.seaweedfs,
// /usr/local/etc/seaweedfs, /etc/seaweedfs; our flag over everything.
TEST(SecurityToml, FoundLikeWeed) {
  EXPECT_EQ(agent::WeedConfigDirs("/home/u"),
            (std::vector<fs::path>{".", "/home/u/.seaweedfs", "/usr/local/etc/seaweedfs",
                                   "/etc/seaweedfs"}));
  EXPECT_EQ(agent::WeedConfigDirs(std::nullopt).size(), 3u);

  testing::TempDir tmp;
  const fs::path first = tmp / "first", second = tmp / "second", empty = tmp / "empty";
  fs::create_directories(first);
  fs::create_directories(second);
  fs::create_directories(empty);
  std::ofstream(second / "security.toml") << "[jwt.signing.read]\nkey = \"second-key\"\n";
  std::ofstream(first / "security.toml") << "[jwt.signing.read]\nkey = \"first-key\"\n";
  std::map<std::string, std::string> vars;
  auto env = [&](const std::string& n) -> std::optional<std::string> {
    auto it = vars.find(n);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  const std::string fid = "3,01637037d6";
  auto key_of = [&](const agent::ReadKeySource& src) -> std::string {
    auto auth = agent::ReadAuthorizer::Open(src);
    if (!auth) return "error: " + auth.error().ToString();
    if (!(*auth)->enabled()) return "off";
    for (std::string k : {"first-key", "second-key", "env-key", "flag-key"}) {
      if ((*auth)->Check(SignReadJwt(fid, k, Now() + 60), fid).ok()) return k;
    }
    return "other";
  };
  // The first directory that has a security.toml wins.
  auto src = agent::FindReadKeySource(std::nullopt, std::nullopt, env, {empty, first, second});
  EXPECT_EQ(src.security_toml, first / "security.toml");
  EXPECT_EQ(key_of(src), "first-key");
  EXPECT_EQ(key_of(agent::FindReadKeySource(std::nullopt, std::nullopt, env, {empty, second})),
            "second-key");
  // None anywhere: off, as on a volume server without a key.
  EXPECT_EQ(key_of(agent::FindReadKeySource(std::nullopt, std::nullopt, env, {empty})), "off");
  // --security-toml is taken instead of the search.
  EXPECT_EQ(key_of(agent::FindReadKeySource(std::nullopt, second / "security.toml", env, {first})),
            "second-key");
  // WEED_JWT_SIGNING_READ_KEY overrides the file, as viper's AutomaticEnv does; empty is unset.
  vars["WEED_JWT_SIGNING_READ_KEY"] = "";
  EXPECT_EQ(key_of(agent::FindReadKeySource(std::nullopt, std::nullopt, env, {first})),
            "first-key");
  vars["WEED_JWT_SIGNING_READ_KEY"] = "env-key";
  src = agent::FindReadKeySource(std::nullopt, second / "security.toml", env, {first});
  EXPECT_EQ(key_of(src), "env-key");
  EXPECT_EQ(agent::ReadAuthorizer::Open(src).value()->source(), "WEED_JWT_SIGNING_READ_KEY");
  // Our own flag (or SWRDMA_JWT_READ_KEY) wins over everything.
  EXPECT_EQ(key_of(agent::FindReadKeySource(std::string("flag-key"), std::nullopt, env, {first})),
            "flag-key");
}

}  // namespace
}  // namespace swrdma
