// SeaweedFS read tokens: JSON Web Tokens signed with HMAC (SHA-256, -384 or -512), claim `fid`.
//
// The volume server (weed/security/jwt.go, weed/server/volume_server_handlers.go) accepts a read
// when the token's signature verifies with `[jwt.signing.read] key`, `exp` (if present) is in the
// future, `nbf` (if present) is not, and claim `fid` equals the requested "<vid>,<key+cookie>"
// without its "_N" delta suffix. This is the same check: HS256 (what weed signs), HS384 and HS512
// (which golang-jwt, and so weed, accept too); no `alg: none`, no other algorithms, no key ids. The
// failure reason is for logs; callers answer every failure the same way (401 {"error":"wrong jwt"})
// so a client learns nothing from it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace swrdma {

// Longest token accepted; SeaweedFS's are ~150 bytes.
inline constexpr size_t kMaxJwtBytes = 4096;

struct ReadClaims {
  std::string fid;             // "3,01637037d6"
  std::optional<int64_t> exp;  // seconds since the epoch
  std::optional<int64_t> nbf;
};

// Verifies `token` against `key` at time `now`: structure, header alg HS256/384/512, signature
// (constant time), exp/nbf, claim fid present. kPermissionDenied with the reason otherwise.
Result<ReadClaims> VerifyReadJwt(std::string_view token, std::string_view key,
                                 std::chrono::system_clock::time_point now);

// Ok when `claims` authorize reading `fid` ("3,01637037d6_2" -> compared without "_2").
Status CheckFidClaim(const ReadClaims& claims, std::string_view fid);

// The fid as SeaweedFS compares it: without the "_N" suffix after the last '_'.
std::string_view FidWithoutDelta(std::string_view fid);

// A token as SeaweedFS's GenJwtForVolumeServer makes it: {"fid":..,"exp":..} (exp omitted when
// not set). For tests, benchmarks and `swrdma token`; the agent itself never signs.
// `alg` is HS256 (weed's), HS384 or HS512; anything else signs HS256.
std::string SignReadJwt(std::string_view fid, std::string_view key, std::optional<int64_t> exp,
                        std::optional<int64_t> nbf = std::nullopt, std::string_view alg = "HS256");

// base64url without padding (RFC 7515 section 2), as JWT segments use it.
std::string Base64UrlEncode(std::string_view bytes);
Result<std::string> Base64UrlDecode(std::string_view text);

}  // namespace swrdma
