// SeaweedFS read tokens: the same acceptance rules as the volume server.
#include "protocol/jwt.h"

#include <gtest/gtest.h>

namespace swrdma {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

const system_clock::time_point kNow = system_clock::time_point(seconds(1'800'000'000));
constexpr std::string_view kKey = "seaweed-read-key";

int64_t At(int64_t delta) {
  return std::chrono::duration_cast<seconds>(kNow.time_since_epoch()).count() + delta;
}

TEST(Jwt, AcceptsATokenSignedElsewhere) {
  // Made with Python's hmac/base64 (an independent implementation), exp = 2100-01-01.
  const std::string token =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjQxMDI0NDQ4MDAsImZpZCI6IjMsMDE2MzcwMzdkNiJ9."
      "ztjnvrGYABPhBgE6zPUOjauLb4R5ZZKYwTB_pbarIdM";
  auto claims = VerifyReadJwt(token, kKey, kNow);
  ASSERT_TRUE(claims.has_value()) << claims.error().ToString();
  EXPECT_EQ(claims->fid, "3,01637037d6");
  EXPECT_EQ(claims->exp, 4102444800);
  EXPECT_TRUE(CheckFidClaim(*claims, "3,01637037d6").ok());
  EXPECT_TRUE(CheckFidClaim(*claims, "3,01637037d6_7").ok());  // delta suffix ignored
  EXPECT_EQ(CheckFidClaim(*claims, "3,01637037d7").code(), Code::kPermissionDenied);
  EXPECT_EQ(CheckFidClaim(*claims, "4,01637037d6").code(), Code::kPermissionDenied);
}

TEST(Jwt, SignedTokensRoundTrip) {
  auto token = SignReadJwt("7,abcdef0123", kKey, At(60), At(-5));
  auto claims = VerifyReadJwt(token, kKey, kNow);
  ASSERT_TRUE(claims.has_value()) << claims.error().ToString();
  EXPECT_EQ(claims->fid, "7,abcdef0123");
  EXPECT_EQ(claims->nbf, At(-5));
  // No exp: valid forever, as in SeaweedFS when expires_after_seconds is 0.
  EXPECT_TRUE(VerifyReadJwt(SignReadJwt("7,abcdef0123", kKey, std::nullopt), kKey, kNow));
}

void ExpectDenied(std::string_view token, std::string_view why_contains,
                  std::string_view key = kKey) {
  auto r = VerifyReadJwt(token, key, kNow);
  ASSERT_FALSE(r.has_value()) << "accepted: " << token;
  EXPECT_EQ(r.error().code(), Code::kPermissionDenied);
  EXPECT_NE(r.error().message().find(why_contains), std::string::npos) << r.error().message();
}

// Issue 15 (10): weed's DecodeJwt accepts any golang-jwt HMAC method: HS384 and HS512 too. The
// tokens were made with Python's hmac (exp = 2100-01-01).
TEST(Jwt, AcceptsHs384AndHs512LikeWeed) {
  const std::string claims = "eyJleHAiOjQxMDI0NDQ4MDAsImZpZCI6IjMsMDE2MzcwMzdkNiJ9";
  const std::string hs384 = "eyJhbGciOiJIUzM4NCIsInR5cCI6IkpXVCJ9." + claims +
                            ".4ADndogSnmLXXdPi_6w_7bVGb793wPBFeXJIJIooy2s1DjOnbbtrmQIgvC6vmOy5";
  const std::string hs512 =
      "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9." + claims +
      ".vo2z1oQAbF7qFI_ZaAIvwFWGuV0FpxrGb75nqYiEXMkktvUP0ah7aCwKXW5eA3Bg5TyprB9BupBrOY09I1PHBQ";
  for (const auto& token : {hs384, hs512}) {
    auto c = VerifyReadJwt(token, kKey, kNow);
    ASSERT_TRUE(c.has_value()) << c.error().ToString();
    EXPECT_EQ(c->fid, "3,01637037d6");
    ExpectDenied(token, "signature", "another-key");
  }
  // A signature of the wrong length for the alg (an HS256 MAC under an HS512 header) is refused.
  const std::string hs256 = SignReadJwt("3,01637037d6", kKey, At(60));
  ExpectDenied(Base64UrlEncode(R"({"alg":"HS512","typ":"JWT"})") + hs256.substr(hs256.find('.')),
               "64 bytes");
  for (std::string_view alg : {"HS384", "HS512"}) {
    auto t = SignReadJwt("3,01637037d6", kKey, At(60), std::nullopt, alg);
    EXPECT_TRUE(VerifyReadJwt(t, kKey, kNow)) << alg;
  }
}

TEST(Jwt, TimeBounds) {
  ExpectDenied(SignReadJwt("3,01", kKey, At(-1)), "expired");
  ExpectDenied(SignReadJwt("3,01", kKey, At(0)), "expired");  // valid while now < exp
  ExpectDenied(SignReadJwt("3,01", kKey, At(100), At(1)), "not valid yet");
  EXPECT_TRUE(VerifyReadJwt(SignReadJwt("3,01", kKey, At(1), At(0)), kKey, kNow));
}

TEST(Jwt, WrongKeyAndTampering) {
  const std::string token = SignReadJwt("3,01637037d6", kKey, At(60));
  ExpectDenied(token, "signature", "another-key");
  ExpectDenied(token, "no signing key", "");
  // Claims swapped for another fid, signature kept.
  const size_t d1 = token.find('.'), d2 = token.rfind('.');
  const std::string forged = token.substr(0, d1 + 1) +
                             Base64UrlEncode(R"({"fid":"3,ffffffffff","exp":4102444800})") +
                             token.substr(d2);
  ExpectDenied(forged, "signature");
  std::string flipped = token;
  flipped[d2 + 3] = flipped[d2 + 3] == 'A' ? 'B' : 'A';
  ExpectDenied(flipped, "signature");
}

TEST(Jwt, AlgNoneAndOtherAlgorithmsAreRefused) {
  const std::string claims = Base64UrlEncode(R"({"fid":"3,01637037d6"})");
  ExpectDenied(Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." + claims + ".", "alg");
  ExpectDenied(Base64UrlEncode(R"({"alg":"RS256"})") + "." + claims + ".c2ln", "alg");
  ExpectDenied(Base64UrlEncode(R"({"alg":"hs256"})") + "." + claims + ".c2ln", "alg");
  ExpectDenied(Base64UrlEncode(R"({"alg":"HS512"})") + "." + claims + ".c2ln", "64 bytes");
  ExpectDenied(Base64UrlEncode(R"({"typ":"JWT"})") + "." + claims + ".c2ln", "alg");
}

TEST(Jwt, GarbageIsRefused) {
  for (std::string_view t : {"", "garbage", "a.b", "a.b.c.d", "!!!.???.***", "..", "e30.e30.",
                             "eyJhbGciOiJIUzI1NiJ9.W10.AAAA"}) {
    auto r = VerifyReadJwt(t, kKey, kNow);
    EXPECT_FALSE(r.has_value()) << t;
    if (!r) {
      EXPECT_EQ(r.error().code(), Code::kPermissionDenied);
    }
  }
  ExpectDenied(std::string(kMaxJwtBytes + 1, 'a'), "too long");
  // Signed but without a fid claim.
  const std::string no_fid =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaW"
      "F0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
  ExpectDenied(no_fid, "fid missing", "your-256-bit-secret");  // the jwt.io example token
}

TEST(Jwt, Base64Url) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba",
                                                       "foobar", std::string("\xff\xfe\x00", 3)}) {
    auto back = Base64UrlDecode(Base64UrlEncode(s));
    ASSERT_TRUE(back.has_value()) << s;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(Base64UrlEncode(std::string("\xfb\xff", 2)), "-_8");
  EXPECT_FALSE(Base64UrlDecode("+/8"));    // standard alphabet refused
  EXPECT_FALSE(Base64UrlDecode("Zm9v="));  // padding refused
  EXPECT_FALSE(Base64UrlDecode("Zm9 v"));
  EXPECT_FALSE(Base64UrlDecode("Z"));
}

TEST(Jwt, FidWithoutDelta) {
  EXPECT_EQ(FidWithoutDelta("3,01637037d6_12"), "3,01637037d6");
  EXPECT_EQ(FidWithoutDelta("3,01637037d6"), "3,01637037d6");
  EXPECT_EQ(FidWithoutDelta("_1"), "_1");
}

}  // namespace
}  // namespace swrdma
