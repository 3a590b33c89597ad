// The agent's HTTP API without sockets: AgentService::Handle on crafted requests, over a real
// exported volume (mapped + registered with UCX).
#include "agent/agent_service.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "index/needle_index.h"
#include "protocol/crc32c.h"
#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "protocol/jwt.h"
#include "protocol/wire.h"
#include "tests/test_util.h"
#include "volume/volume_generator.h"

namespace swrdma::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class AgentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(tmp_ / "vols");
    GenerateOptions o;
    o.dir = tmp_ / "vols";
    o.volume_id = 1;
    o.needles = 60;
    o.min_size = 100;
    o.max_size = 5000;
    o.gzip_fraction = 0.3;
    o.delete_fraction = 0.1;
    o.seed = 3;
    report_ = *GenerateVolume(o, {});
    context_.emplace(std::move(*rdma::UcxContext::Create({})));
    index_ = std::move(*NeedleIndex::Open(tmp_ / "index"));
    VolumeSetOptions vo;
    vo.dirs = {tmp_ / "vols"};
    volumes_ = std::make_unique<VolumeSet>(*index_, *context_, vo);
    ASSERT_EQ(volumes_->Scan().exported, 1u);
    ServiceOptions so;
    so.agent_version = "test";
    so.worker_address = {1, 2, 3};
    so.transports = {"tcp"};
    so.max_lookup_batch = 100;
    // The HTTP API as an agent whose NIC enforces keys answers it (rkeys and addresses handed
    // out); the default checked exposure is covered by read_auth_test.
    so.exposure = "region";
    so.exposures = {{"tcp", "checked"}};
    service_ = std::make_unique<AgentService>(*volumes_, so);
    for (const auto& n : report_.needles) {
      if (!n.deleted && !live_) live_ = &n;
      if (!n.deleted && n.gzipped && !gzipped_) gzipped_ = &n;
      if (n.deleted && !deleted_) deleted_ = &n;
      if (!n.deleted && !n.gzipped && !plain_) plain_ = &n;
    }
    ASSERT_TRUE(live_ && gzipped_ && deleted_ && plain_);
  }

  HttpResponse Call(std::string method, std::string target, std::string body = {},
                    std::vector<HttpHeader> headers = {}) {
    HttpRequest r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.body = std::move(body);
    r.headers = std::move(headers);
    return service_->Handle(r);
  }
  json JsonOf(const HttpResponse& r) {
    auto j =
        DecodeBody(r.body, r.content_type.find("json") != std::string::npos ? WireFormat::kJson
                                                                            : WireFormat::kMsgpack);
    EXPECT_TRUE(j) << j.error().ToString() << " body: " << r.body.substr(0, 200);
    return j ? *j : json();
  }
  std::vector<uint8_t> Data(const GeneratedNeedle& n) {
    return GeneratedNeedleData(3, n.fid.needle_id, n.size, n.gzipped);
  }
  static std::string Str(const std::vector<uint8_t>& v) { return {v.begin(), v.end()}; }

  testing::TempDir tmp_;
  GenerateReport report_;
  std::optional<rdma::UcxContext> context_;
  std::unique_ptr<NeedleIndex> index_;
  std::unique_ptr<VolumeSet> volumes_;
  std::unique_ptr<AgentService> service_;
  const GeneratedNeedle *live_ = nullptr, *gzipped_ = nullptr, *deleted_ = nullptr,
                        *plain_ = nullptr;
};

const HttpHeader kJsonAccept{"Accept", "application/json"};

TEST_F(AgentServiceTest, HealthAndReadiness) {
  EXPECT_EQ(Call("GET", "/healthz").status, 200);
  EXPECT_EQ(Call("GET", "/readyz").status, 503);
  service_->SetReady(true);
  EXPECT_EQ(Call("GET", "/readyz").status, 200);
  EXPECT_EQ(Call("POST", "/healthz").status, 405);
}

TEST_F(AgentServiceTest, InfoAndVolumesInBothFormats) {
  auto info = Call("GET", "/v1/info");
  EXPECT_EQ(info.content_type, "application/msgpack");
  auto parsed = AgentInfoFromJson(JsonOf(info));
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_EQ(parsed->worker_address, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(parsed->volume_count, 1u);
  EXPECT_EQ(JsonOf(Call("GET", "/v1/info", {}, {kJsonAccept}))["exposures"],
            json({{"tcp", "checked"}}));

  auto vols = Call("GET", "/v1/volumes", {}, {kJsonAccept});
  EXPECT_EQ(vols.content_type, "application/json");
  auto list = VolumeListFromJson(JsonOf(vols));
  ASSERT_TRUE(list) << list.error().ToString();
  ASSERT_EQ(list->volumes.size(), 1u);
  const auto& v = list->volumes[0];
  EXPECT_EQ(v.volume_id, 1u);
  EXPECT_EQ(v.size, report_.dat_size);
  EXPECT_EQ(v.live_needles, report_.written - report_.deleted);
  EXPECT_EQ(v.deleted_needles, report_.deleted);
  ASSERT_EQ(v.regions.size(), 1u);
  // The file plus the default 1 GiB growth reserve is registered.
  EXPECT_EQ(v.regions[0].length, report_.dat_size + (uint64_t{1} << 30));
  EXPECT_FALSE(v.regions[0].rkey.empty());

  EXPECT_EQ(Call("GET", "/v1/volumes/1").status, 200);
  EXPECT_EQ(Call("GET", "/v1/volumes/99").status, 404);
  EXPECT_EQ(Call("GET", "/v1/volumes/abc").status, 400);
  EXPECT_EQ(Call("GET", "/v1/volumes/").status, 400);
  EXPECT_EQ(Call("GET", "/v1/nothing").status, 404);
  EXPECT_EQ(Call("DELETE", "/v1/volumes").status, 405);
}

TEST_F(AgentServiceTest, LookupAnswersEveryStatus) {
  const FileId f = live_->fid;
  LookupRequest req{{FormatFileId(f), FormatFileId(deleted_->fid), "1,zz", "nonsense",
                     FormatFileId({1, 999999, 1}), FormatFileId({42, f.needle_id, f.cookie}),
                     FormatFileId({1, f.needle_id, f.cookie ^ 1})}};
  for (WireFormat fmt : {WireFormat::kMsgpack, WireFormat::kJson}) {
    std::vector<HttpHeader> h{{"Content-Type", std::string(MimeOf(fmt))}};
    auto resp = Call("POST", "/v1/lookup", EncodeBody(ToJson(req), fmt), h);
    ASSERT_EQ(resp.status, 200) << resp.body;
    auto parsed = LookupResponseFromJson(JsonOf(resp));
    ASSERT_TRUE(parsed) << parsed.error().ToString();
    ASSERT_EQ(parsed->results.size(), req.fids.size());
    const auto& r = parsed->results;
    EXPECT_EQ(r[0].status, LookupStatus::kOk);
    EXPECT_EQ(r[0].length, NeedleRecordLength(r[0].size, NeedleVersion::kV3));
    EXPECT_EQ(r[0].address - volumes_->snapshot()->volumes.at(1).exported->base_address(),
              live_->offset);
    EXPECT_EQ(r[1].status, LookupStatus::kDeleted);
    EXPECT_EQ(r[2].status, LookupStatus::kBadFid);
    EXPECT_EQ(r[3].status, LookupStatus::kBadFid);
    EXPECT_EQ(r[4].status, LookupStatus::kNotFound);
    EXPECT_EQ(r[5].status, LookupStatus::kUnknownVolume);
    EXPECT_EQ(r[6].status, LookupStatus::kNotFound);  // wrong cookie
    EXPECT_EQ(r[6].error, "cookie mismatch");
  }
}

TEST_F(AgentServiceTest, BadLookupRequestsAre4xxWithAMessage) {
  auto garbage = Call("POST", "/v1/lookup", "\xc1\xc1\xc1");
  EXPECT_EQ(garbage.status, 400);
  EXPECT_NE(JsonOf(garbage)["error"].get<std::string>().find("msgpack"), std::string::npos);

  auto missing = Call("POST", "/v1/lookup", R"({"protocol":1})",
                      {{"Content-Type", "application/json"}, kJsonAccept});
  EXPECT_EQ(missing.status, 400);
  EXPECT_NE(JsonOf(missing)["error"].get<std::string>().find("'fids'"), std::string::npos);

  auto wrong_type = Call("POST", "/v1/lookup", R"({"protocol":1,"fids":[1,2]})",
                         {{"Content-Type", "application/json"}});
  EXPECT_EQ(wrong_type.status, 400);

  LookupRequest big;
  big.fids.assign(101, FormatFileId(live_->fid));
  auto too_many = Call("POST", "/v1/lookup", EncodeBody(ToJson(big), WireFormat::kMsgpack));
  EXPECT_EQ(too_many.status, 400);

  std::string deep(100000, '\x91');
  EXPECT_EQ(Call("POST", "/v1/lookup", deep).status, 400);
  EXPECT_EQ(Call("POST", "/v1/lookup", "").status, 400);
  EXPECT_EQ(Call("GET", "/v1/lookup").status, 405);
}

TEST_F(AgentServiceTest, HttpFallbackMatchesVolumeServerSemantics) {
  const std::string fid = FormatFileId(plain_->fid);
  const auto want = Data(*plain_);
  auto ok = Call("GET", "/" + fid);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.body, Str(want));
  std::string etag;
  for (const auto& h : ok.headers) {
    if (h.name == "ETag") etag = h.value;
  }
  EXPECT_EQ(etag, fmt::format("\"{:08x}\"", Crc32c(want)));

  // Other path forms of the same needle.
  const auto vid_slash = fmt::format("/1/{}", fid.substr(2));
  EXPECT_EQ(Call("GET", vid_slash + ".jpg").body, Str(want));
  EXPECT_EQ(Call("GET", vid_slash + "/photo.jpg").body, Str(want));
  EXPECT_EQ(Call("GET", "/" + fid + ".txt").body, Str(want));

  EXPECT_EQ(Call("GET", "/" + fid, {}, {{"If-None-Match", etag}}).status, 304);

  auto range = Call("GET", "/" + fid, {}, {{"Range", "bytes=10-19"}});
  EXPECT_EQ(range.status, 206);
  EXPECT_EQ(range.body, Str(want).substr(10, 10));
  auto suffix = Call("GET", "/" + fid, {}, {{"Range", "bytes=-5"}});
  EXPECT_EQ(suffix.status, 206);
  EXPECT_EQ(suffix.body, Str(want).substr(want.size() - 5));
  EXPECT_EQ(Call("GET", "/" + fid, {}, {{"Range", "bytes=999999-"}}).status, 416);
  EXPECT_EQ(Call("GET", "/" + fid, {}, {{"Range", "pages=1-2"}}).status, 416);

  EXPECT_EQ(Call("GET", "/" + FormatFileId(deleted_->fid)).status, 404);
  FileId wrong_cookie = plain_->fid;
  wrong_cookie.cookie ^= 1;
  EXPECT_EQ(Call("GET", "/" + FormatFileId(wrong_cookie)).status, 404);
  EXPECT_EQ(Call("GET", "/7," + fid.substr(2)).status, 404);  // unknown volume
  EXPECT_EQ(Call("GET", "/1,zz").status, 400);
  EXPECT_EQ(Call("GET", "/favicon.ico").status, 400);
  EXPECT_EQ(Call("PUT", "/" + fid).status, 405);
}

TEST_F(AgentServiceTest, HttpFallbackGzipFollowsAcceptEncoding) {
  const std::string fid = FormatFileId(gzipped_->fid);
  const auto want = Data(*gzipped_);
  auto plain = Call("GET", "/" + fid);
  ASSERT_EQ(plain.status, 200);
  EXPECT_EQ(plain.body, Str(want));
  auto gz = Call("GET", "/" + fid, {}, {{"Accept-Encoding", "gzip, deflate"}});
  ASSERT_EQ(gz.status, 200);
  bool has_encoding = false;
  for (const auto& h : gz.headers)
    has_encoding |= h.name == "Content-Encoding" && h.value == "gzip";
  EXPECT_TRUE(has_encoding);
  auto back = Gunzip({reinterpret_cast<const uint8_t*>(gz.body.data()), gz.body.size()});
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, want);
}

TEST_F(AgentServiceTest, MetricsCountLookupsAndFallbackReads) {
  auto before = Call("GET", "/metrics");
  ASSERT_EQ(before.status, 200);
  EXPECT_NE(before.content_type.find("text/plain"), std::string::npos);
  EXPECT_NE(before.body.find("swrdma_exported_volumes 1"), std::string::npos) << before.body;
  EXPECT_NE(
      before.body.find(fmt::format("swrdma_live_needles {}", report_.written - report_.deleted)),
      std::string::npos);

  LookupRequest req{{FormatFileId(live_->fid), FormatFileId(live_->fid), "1,zz"}};
  ASSERT_EQ(Call("POST", "/v1/lookup", EncodeBody(ToJson(req), WireFormat::kMsgpack)).status, 200);
  ASSERT_EQ(Call("GET", "/" + FormatFileId(plain_->fid)).status, 200);
  ASSERT_EQ(Call("GET", "/" + FormatFileId(deleted_->fid)).status, 404);

  const std::string after = Call("GET", "/metrics").body;
  EXPECT_NE(after.find(R"(swrdma_lookups_total{status="ok"} 2)"), std::string::npos) << after;
  EXPECT_NE(after.find(R"(swrdma_lookups_total{status="bad_fid"} 1)"), std::string::npos);
  EXPECT_NE(after.find("swrdma_lookup_request_seconds_count 1"), std::string::npos);
  EXPECT_NE(after.find(R"(swrdma_http_fallback_reads_total{code="200"} 1)"), std::string::npos);
  EXPECT_NE(after.find(R"(swrdma_http_fallback_reads_total{code="404"} 1)"), std::string::npos);
  EXPECT_EQ(Call("POST", "/metrics").status, 405);
}

// POST /v1/verbs/grant: the connection a nonce names may READ until the token's expiry. The
// verbs side is faked here (tests/vm runs the real one against Soft-RoCE).
TEST_F(AgentServiceTest, VerbsGrantNeedsAValidTokenAndAKnownConnection) {
  EXPECT_EQ(Call("POST", "/v1/verbs/grant?connection=00").status, 501) << "no verbs: 501";

  auto auth = ReadAuthorizer::Open({std::string("grant-key"), std::nullopt});
  ASSERT_TRUE(auth.has_value()) << auth.error().ToString();
  const std::string nonce_hex = "00112233445566778899aabbccddeeff";
  std::vector<std::pair<std::vector<uint8_t>, std::optional<int64_t>>> calls;
  ServiceOptions so;
  so.agent_version = "test";
  so.exposure = "region";
  so.auth = auth->get();
  so.verbs_grant = [&](std::span<const uint8_t> nonce,
                       std::optional<int64_t> exp) -> Result<std::optional<int64_t>> {
    calls.emplace_back(std::vector<uint8_t>(nonce.begin(), nonce.end()), exp);
    if (nonce[0] != 0x00) return Error(Code::kNotFound, "no verbs connection with that nonce");
    return std::optional<int64_t>(*exp * 1000);
  };
  AgentService service(*volumes_, so);
  auto call = [&](std::string method, std::string target, std::string token) {
    HttpRequest r;
    r.method = std::move(method);
    r.target = std::move(target);
    if (!token.empty()) r.headers.push_back({"Authorization", "Bearer " + token});
    r.headers.push_back(kJsonAccept);
    return service.Handle(r);
  };
  const int64_t exp = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count() +
                      60;
  // Any fid's valid token will do: the grant binds how long, not which needle.
  const std::string token = SignReadJwt("9,0123456789", "grant-key", exp);
  auto ok = call("POST", "/v1/verbs/grant?connection=" + nonce_hex, token);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(JsonOf(ok)["until_ms"].get<int64_t>(), exp * 1000);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].first[1], 0x11);
  EXPECT_EQ(calls[0].first[15], 0xff);
  EXPECT_EQ(calls[0].second, exp) << "the token's exp bounds the grant";

  // No token, a token of another key, an expired one: "wrong jwt", nothing granted.
  for (const std::string& bad : {std::string(), SignReadJwt("9,0123456789", "other-key", exp),
                                 SignReadJwt("9,0123456789", "grant-key", exp - 3600)}) {
    auto r = call("POST", "/v1/verbs/grant?connection=" + nonce_hex, bad);
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.body, R"({"error":"wrong jwt"})");
  }
  EXPECT_EQ(calls.size(), 1u) << "a refused token reaches no connection";
  // Malformed nonces: 400; an unknown connection: 404; GET: 405.
  for (const std::string& q :
       {std::string(), std::string("?connection="), std::string("?connection=0011"),
        "?connection=" + std::string(31, 'a') + "g"}) {
    EXPECT_EQ(call("POST", "/v1/verbs/grant" + q, token).status, 400) << q;
  }
  EXPECT_EQ(
      call("POST", "/v1/verbs/grant?connection=ff112233445566778899aabbccddeeff", token).status,
      404);
  EXPECT_EQ(call("GET", "/v1/verbs/grant?connection=" + nonce_hex, token).status, 405);
}

}  // namespace
}  // namespace swrdma::agent
