#include "protocol/messages.h"

#include <gtest/gtest.h>

#include "protocol/wire.h"

namespace swrdma {
namespace {

using nlohmann::json;

template <typename T, typename F>
T RoundTrip(const T& in, WireFormat f, F from_json) {
  std::string body = EncodeBody(ToJson(in), f);
  auto tree = DecodeBody(body, f);
  EXPECT_TRUE(tree) << tree.error().ToString();
  auto out = from_json(*tree);
  EXPECT_TRUE(out) << out.error().ToString();
  return *out;
}

VolumeDescriptor SampleVolume() {
  VolumeDescriptor v;
  v.volume_id = 7;
  v.collection = "pics";
  v.version = 3;
  v.size = 1 << 30;
  v.live_needles = 1000;
  v.deleted_needles = 3;
  v.compaction_revision = 2;
  v.generation = 42;
  v.regions.push_back({0, 0x7f0000000000, 1 << 30, {1, 2, 3, 0xff}});
  return v;
}

TEST(Messages, RoundTripInBothFormats) {
  for (WireFormat f : {WireFormat::kMsgpack, WireFormat::kJson}) {
    AgentInfo info{"0.1.0", {9, 8, 7, 0}, {"tcp", "posix"}, 2, "region"};
    auto info2 = RoundTrip(info, f, AgentInfoFromJson);
    EXPECT_EQ(info2.worker_address, info.worker_address);
    EXPECT_EQ(info2.transports, info.transports);
    EXPECT_EQ(info2.volume_count, 2u);

    auto vol = RoundTrip(SampleVolume(), f, VolumeDescriptorFromJson);
    EXPECT_EQ(vol.collection, "pics");
    EXPECT_EQ(vol.generation, 42u);
    ASSERT_EQ(vol.regions.size(), 1u);
    EXPECT_EQ(vol.regions[0].address, 0x7f0000000000u);
    EXPECT_EQ(vol.regions[0].rkey, (std::vector<uint8_t>{1, 2, 3, 0xff}));

    VolumeList list{{SampleVolume(), SampleVolume()}};
    EXPECT_EQ(RoundTrip(list, f, VolumeListFromJson).volumes.size(), 2u);

    LookupRequest req{{"3,01637037d6", "bad"}, {}};
    EXPECT_EQ(RoundTrip(req, f, LookupRequestFromJson).fids, req.fids);
    EXPECT_TRUE(RoundTrip(req, f, LookupRequestFromJson).jwts.empty());
    req.jwts = {"a.b.c", "d.e.f"};
    EXPECT_EQ(RoundTrip(req, f, LookupRequestFromJson).jwts, req.jwts);

    LookupResponse resp;
    resp.results.push_back({"3,01637037d6", LookupStatus::kOk, 3, 5, 0x1000, 4128, 4100, 0, ""});
    resp.results.push_back({"x", LookupStatus::kBadFid, 0, 0, 0, 0, 0, 0, "no comma"});
    resp.results.push_back({"3,02", LookupStatus::kOk, 3, 5, 0x2000, 64, 20, 3, ""});
    resp.results.push_back({"3,03", LookupStatus::kNoRoom, 3, 5, 0, 5000000, 0, 0, "too big"});
    LookupResult unregistered{"3,04", LookupStatus::kOk, 3, 5, 0x3000, 64, 20, 0, ""};
    unregistered.checked = true;  // past the agent's pin budget: read it checked
    resp.results.push_back(unregistered);
    auto resp2 = RoundTrip(resp, f, LookupResponseFromJson);
    ASSERT_EQ(resp2.results.size(), 5u);
    EXPECT_FALSE(resp2.results[0].checked) << "sent only when true";
    EXPECT_TRUE(resp2.results[4].checked);
    EXPECT_FALSE(resp2.results[4].ec);
    EXPECT_EQ(resp2.results[0].status, LookupStatus::kOk);
    EXPECT_EQ(resp2.results[0].length, 4128u);
    EXPECT_EQ(resp2.results[0].version, 0);  // not sent
    EXPECT_EQ(resp2.results[1].status, LookupStatus::kBadFid);
    EXPECT_EQ(resp2.results[1].error, "no comma");
    EXPECT_EQ(resp2.results[2].version, 3);  // push answers (verbs) carry it
    EXPECT_EQ(resp2.results[3].status, LookupStatus::kNoRoom);
    EXPECT_EQ(resp2.results[3].length, 5000000u);  // how much room it needs
  }
}

// EC volumes over verbs: the registered shards in the descriptor, the READs of a needle's pieces
// in the lookup answer; READs that do not add up to the record (a client sizes its buffer by
// the record's length) or too many of them are refused.
TEST(Messages, EcRegionsAndReadsRoundTripAndBadReadsAreRefused) {
  for (WireFormat f : {WireFormat::kMsgpack, WireFormat::kJson}) {
    VolumeDescriptor v = SampleVolume();
    v.regions.clear();
    v.ec = true;
    v.ec_shards = {0, 1, 13};
    v.ec_regions.push_back({13, 0x7f0000100000, 1 << 20, {9, 9, 9, 9}});
    auto v2 = RoundTrip(v, f, VolumeDescriptorFromJson);
    ASSERT_EQ(v2.ec_regions.size(), 1u);
    EXPECT_EQ(v2.ec_regions[0].shard, 13u);
    EXPECT_EQ(v2.ec_regions[0].address, 0x7f0000100000u);
    EXPECT_EQ(v2.ec_regions[0].length, 1u << 20);
    EXPECT_EQ(v2.ec_regions[0].rkey, (std::vector<uint8_t>{9, 9, 9, 9}));
    v.ec_regions.clear();
    EXPECT_FALSE(ToJson(v).contains("ec_regions")) << "sent only when some are registered";

    LookupResponse resp;
    LookupResult r{"3,01637037d6", LookupStatus::kOk, 3, 5, 0, 4128, 4100, 3, ""};
    r.ec = true;
    r.ec_intervals = {{3, 0x1000, 4000}, {4, 0, 128}};
    resp.results.push_back(r);
    auto resp2 = RoundTrip(resp, f, LookupResponseFromJson);
    ASSERT_EQ(resp2.results.size(), 1u);
    EXPECT_EQ(resp2.results[0].ec_intervals, r.ec_intervals);
    r.ec_intervals.clear();
    resp.results[0] = r;
    EXPECT_TRUE(RoundTrip(resp, f, LookupResponseFromJson).results[0].ec_intervals.empty());
  }
  auto answer = [](json reads) {
    json j = ToJson(LookupResponse{{{"3,01", LookupStatus::kOk, 3, 5, 0, 100, 80, 3, ""}}, {}});
    j["results"][0]["ec"] = true;
    j["results"][0]["ec_intervals"] = std::move(reads);
    return LookupResponseFromJson(j);
  };
  EXPECT_TRUE(answer(json::parse("[[0, 4096, 60], [1, 0, 40]]")));
  json too_many = json::array();
  for (int i = 0; i < 17; ++i)
    too_many.push_back(json::array({i % 10, 4096 * i, i == 0 ? 84 : 1}));
  for (const json& bad : {json::parse("[[0, 4096, 60], [1, 0, 39]]"),  // short of the record
                          json::parse("[[0, 4096, 60], [1, 0, 41]]"),  // past it
                          json::parse("[[0, 4096, 0], [1, 0, 100]]"),  // an empty READ
                          json::parse("[[0, 4096, 100], [1, 0, 18446744073709551615]]"),
                          json::parse("[[256, 0, 100]]"),  // no such shard
                          json::parse("[[0, 4096], [1, 0, 100]]"), json::parse("[[0, -1, 100]]"),
                          json::parse("[\"0\", 4096, 100]"), json::parse("{\"a\": 1}"), too_many}) {
    auto r = answer(bad);
    ASSERT_FALSE(r) << bad.dump();
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
    EXPECT_NE(r.error().message().find("ec_intervals"), std::string::npos) << r.error().ToString();
  }
}

TEST(Messages, JsonShowsBytesAsHex) {
  AgentInfo info{"0.1.0", {0xab, 0x01}, {"tcp"}, 0, "region"};
  auto j = json::parse(EncodeBody(ToJson(info), WireFormat::kJson));
  EXPECT_EQ(j["worker_address"], "ab01");
  EXPECT_EQ(j["protocol"], kProtocolVersion);
}

TEST(Messages, UnknownFieldsAreIgnored) {
  json j = ToJson(LookupRequest{{"1,0101020304"}});
  j["future_field"] = {{"nested", true}};
  auto r = LookupRequestFromJson(j);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->fids.size(), 1u);
}

TEST(Messages, MissingOrWronglyTypedFieldsNameTheField) {
  auto r = LookupRequestFromJson(json{{"protocol", 1}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("'fids'"), std::string::npos);

  r = LookupRequestFromJson(json{{"protocol", 1}, {"fids", "3,01637037d6"}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("array"), std::string::npos);

  r = LookupRequestFromJson(json{{"protocol", 1}, {"fids", {1, 2}}});
  ASSERT_FALSE(r);

  r = LookupRequestFromJson(json{{"fids", {"1,0101020304"}}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("'protocol'"), std::string::npos);

  r = LookupRequestFromJson(json{{"protocol", 99}, {"fids", json::array()}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("not supported"), std::string::npos);

  EXPECT_FALSE(LookupRequestFromJson(json::array({1, 2})));

  LookupResponse ok;
  ok.results.push_back({"3,04", LookupStatus::kOk, 3, 5, 0x3000, 64, 20, 0, ""});
  json resp = ToJson(ok);
  resp["results"][0]["checked"] = "yes";
  auto bad = LookupResponseFromJson(resp);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("'checked'"), std::string::npos) << bad.error().message();
}

TEST(Messages, GarbageBodiesAreInvalidArgument) {
  for (WireFormat f : {WireFormat::kMsgpack, WireFormat::kJson}) {
    for (std::string body : {std::string(""), std::string("\xc1\xc1\xc1"), std::string("{{{{"),
                             std::string("\x92\x01", 2) /* truncated array */}) {
      auto r = DecodeBody(body, f);
      EXPECT_FALSE(r) << "accepted garbage";
      if (!r) {
        EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
      }
    }
  }
  // A valid message followed by junk.
  std::string body = EncodeBody(ToJson(LookupRequest{{"1,0101020304"}}), WireFormat::kMsgpack);
  body += "junk";
  auto r = DecodeBody(body, WireFormat::kMsgpack);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("trailing"), std::string::npos);
}

TEST(Messages, DeepNestingIsRefusedNotRecursed) {
  // 1 MB of nested one-element arrays in msgpack (0x91) and JSON ('[').
  std::string mp(1 << 20, '\x91');
  mp.push_back('\x01');
  auto r = DecodeBody(mp, WireFormat::kMsgpack);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);

  std::string js(1 << 20, '[');
  r = DecodeBody(js, WireFormat::kJson);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("deeper"), std::string::npos);
}

TEST(Messages, SizeLimitsApply) {
  DecodeLimits lim;
  lim.max_array = 10;
  lim.max_str = 16;
  LookupRequest big;
  big.fids.assign(11, "1,0101020304");
  for (WireFormat f : {WireFormat::kMsgpack, WireFormat::kJson}) {
    EXPECT_FALSE(DecodeBody(EncodeBody(ToJson(big), f), f, lim)) << static_cast<int>(f);
    LookupRequest long_str{{std::string(17, 'a')}};
    EXPECT_FALSE(DecodeBody(EncodeBody(ToJson(long_str), f), f, lim));
    LookupRequest ok{{"1,0101020304"}};
    EXPECT_TRUE(DecodeBody(EncodeBody(ToJson(ok), f), f, lim));
  }
}

TEST(Messages, HexHelpers) {
  std::vector<uint8_t> b{0, 1, 0xab, 0xff};
  EXPECT_EQ(ToHex(b), "0001abff");
  EXPECT_EQ(*FromHex("0001ABff"), b);
  EXPECT_FALSE(FromHex("abc"));
  EXPECT_FALSE(FromHex("zz"));
}

}  // namespace
}  // namespace swrdma
