// Fuzzes SeaweedFS read-token verification (protocol/jwt.h), which runs on every token a client
// sends when the agent requires read authorization. Input: 1 selector byte, then
//   selector even: the raw token (structure, base64url, header checks, signature);
//   selector odd:  "<header JSON>\n<claims JSON>", encoded and signed with the right key here, so
//                  the claim handling behind the signature check (exp/nbf/fid types) is reached.
// Verification either succeeds with a string fid claim or fails with kPermissionDenied; base64url
// and sign/verify round-trip.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <source_location>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "protocol/jwt.h"

namespace {

using swrdma::fuzz::Check;

constexpr std::string_view kKey = "fuzz-read-key";

std::string Sign(std::string_view signing_input) {
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kKey.data(), static_cast<int>(kKey.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &len);
  return swrdma::Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace swrdma;
  if (size < 1) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));

  std::string token;
  if (data[0] & 1) {
    const size_t nl = input.find('\n');
    const std::string_view header = input.substr(0, nl);
    const std::string_view claims = nl == std::string_view::npos ? "" : input.substr(nl + 1);
    token = Base64UrlEncode(header) + "." + Base64UrlEncode(claims);
    token += "." + Sign(token);
  } else {
    token = std::string(input);
  }

  auto claims = VerifyReadJwt(token, kKey, now);
  if (claims) {
    Check(CheckFidClaim(*claims, claims->fid).ok() || FidWithoutDelta(claims->fid) != claims->fid);
    if (claims->exp) Check(*claims->exp > 1'700'000'000);
    if (claims->nbf) Check(*claims->nbf <= 1'700'000'000);
    // Another key never verifies it.
    Check(!VerifyReadJwt(token, "other-key", now).has_value());
  } else {
    Check(claims.error().code() == Code::kPermissionDenied);
  }

  // base64url round trip of arbitrary bytes; decoding arbitrary text never crashes.
  auto decoded = Base64UrlDecode(Base64UrlEncode(input));
  Check(decoded.has_value() && *decoded == input);
  (void)Base64UrlDecode(input);

  // A token the agent's signer makes for this fid verifies and covers the fid, with or without
  // a delta suffix.
  // (printable ASCII only: the signer is a test tool and fids are ASCII.)
  const std::string fid(input.substr(0, 64));
  for (char c : fid) {
    if (c < 0x20 || c > 0x7e) return 0;
  }
  const std::string signed_token = SignReadJwt(fid, kKey, 1'700'000'100);
  auto own = VerifyReadJwt(signed_token, kKey, now);
  Check(own.has_value() && own->fid == fid);
  Check(CheckFidClaim(*own, fid).ok() || FidWithoutDelta(fid) != fid);
  return 0;
}
