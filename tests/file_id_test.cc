#include "protocol/file_id.h"

#include <gtest/gtest.h>

namespace swrdma {
namespace {

TEST(FileId, ParsesTheCanonicalExample) {
  auto fid = ParseFileId("3,01637037d6");
  ASSERT_TRUE(fid) << fid.error().ToString();
  EXPECT_EQ(fid->volume_id, 3u);
  EXPECT_EQ(fid->needle_id, 0x01u);
  EXPECT_EQ(fid->cookie, 0x637037d6u);
}

TEST(FileId, ParsesFixtureIds) {
  auto a = ParseFileId("1,08ccd23656");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->needle_id, 0x08u);
  EXPECT_EQ(a->cookie, 0xccd23656u);
  auto b = ParseFileId("4294967295,ffffffffffffffffffffffff");
  ASSERT_TRUE(b) << b.error().ToString();
  EXPECT_EQ(b->volume_id, 0xFFFFFFFFu);
  EXPECT_EQ(b->needle_id, ~uint64_t{0});
  EXPECT_EQ(b->cookie, 0xFFFFFFFFu);
}

TEST(FileId, OddLengthKeysAreAccepted) {
  auto fid = ParseFileId("7,1637037d6");  // 9 hex chars: one nibble of needle id
  ASSERT_TRUE(fid);
  EXPECT_EQ(fid->needle_id, 1u);
  EXPECT_EQ(fid->cookie, 0x637037d6u);
}

TEST(FileId, DeltaSuffixAddsToNeedleId) {
  auto fid = ParseFileId("3,01637037d6_5");
  ASSERT_TRUE(fid);
  EXPECT_EQ(fid->needle_id, 6u);
  EXPECT_EQ(fid->cookie, 0x637037d6u);
  EXPECT_EQ(StripDeltaSuffix("3,01637037d6_5"), "3,01637037d6");
  EXPECT_EQ(StripDeltaSuffix("3,01637037d6"), "3,01637037d6");
  EXPECT_EQ(StripDeltaSuffix("pics_3,01637037d6"), "pics_3,01637037d6");
  // Up to exactly 2^64 - 1 is fine; an empty suffix is ignored, as in weed.
  auto top = ParseFileId("3,fffffffffffffff0637037d6_15");
  ASSERT_TRUE(top);
  EXPECT_EQ(top->needle_id, ~uint64_t{0});
  EXPECT_EQ(ParseFileId("3,01637037d6_")->needle_id, 1u);
}

TEST(FileId, RoundTripsThroughFormat) {
  // Needle id 0 is never issued: SeaweedFS formats it as the cookie alone, which does not parse.
  for (uint64_t id : {uint64_t{1}, uint64_t{0x100}, uint64_t{0x671b905},
                      uint64_t{0x0123456789abcdef}, ~uint64_t{0}}) {
    for (uint32_t cookie : {0u, 1u, 0x637037d6u, 0xFFFFFFFFu}) {
      FileId in{42, id, cookie};
      std::string s = FormatFileId(in);
      auto out = ParseFileId(s);
      ASSERT_TRUE(out) << s << ": " << out.error().ToString();
      EXPECT_EQ(*out, in) << s;
    }
  }
  EXPECT_EQ(FormatFileId({3, 1, 0x637037d6}), "3,01637037d6");
  EXPECT_EQ(FormatFileId({3, 0, 0x637037d6}), "3,637037d6");
  EXPECT_EQ(FormatFileId({3, 0x1234, 0xab}), "3,1234000000ab");
}

TEST(FileId, RejectsMalformedIdsWithClearErrors) {
  struct Case {
    const char* fid;
    const char* mentions;
  } cases[] = {
      {"", "no comma"},
      {"301637037d6", "no comma"},
      {",01637037d6", "volume id"},
      {"x,01637037d6", "volume id"},
      {"-3,01637037d6", "volume id"},
      {"4294967296,01637037d6", "volume id"},
      {"3,637037d6", "too short"},
      {"3,", "too short"},
      {"3,0123456789abcdef0123456789", "too long"},
      {"3,01637037zz", "not hexadecimal"},
      {"3,0x637037d6", "not hexadecimal"},
      {"3,01637037d6_x", "delta"},
      {"3,01637037d6_-1", "delta"},
      // Issue 15 (7): past 2^64 weed answers 400; wrapping would read another needle.
      {"3,ffffffffffffffff637037d6_1", "overflows"},
      {"3,fffffffffffffff0637037d6_16", "overflows"},
      {"3,01637037d6_18446744073709551615", "overflows"},
      {"3,01637037d6_18446744073709551616", "delta"},
  };
  for (const auto& c : cases) {
    auto r = ParseFileId(c.fid);
    ASSERT_FALSE(r) << "accepted '" << c.fid << "'";
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << c.fid;
    EXPECT_NE(r.error().message().find(c.mentions), std::string::npos)
        << c.fid << " -> " << r.error().message();
  }
}

}  // namespace
}  // namespace swrdma
