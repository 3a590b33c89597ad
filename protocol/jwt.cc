#include "protocol/jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace swrdma {
namespace {

using nlohmann::json;

Status Denied(std::string_view why) {
  return Status(Code::kPermissionDenied, fmt::format("read token rejected: {}", why));
}

// The HMAC algorithms golang-jwt registers (SigningMethodHS256/384/512), which weed's DecodeJwt
// accepts alike: it only checks that the method is an HMAC.
const EVP_MD* HmacDigest(std::string_view alg) {
  if (alg == "HS256") return EVP_sha256();
  if (alg == "HS384") return EVP_sha384();
  if (alg == "HS512") return EVP_sha512();
  return nullptr;
}

std::string Hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &len);
  return std::string(reinterpret_cast<const char*>(mac.data()), len);
}

// A JSON segment of a token: base64url, then an object.
Result<json> DecodeSegment(std::string_view segment, std::string_view what) {
  auto raw = Base64UrlDecode(segment);
  if (!raw) return Error(Denied(fmt::format("{} is not base64url", what)));
  json j = json::parse(*raw, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Error(Denied(fmt::format("{} is not a JSON object", what)));
  return j;
}

// A NumericDate claim: integer or fractional seconds (golang-jwt accepts both); truncated.
Result<std::optional<int64_t>> NumericDate(const json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end() || it->is_null()) return std::optional<int64_t>();
  if (it->is_number_integer()) return std::optional<int64_t>(it->get<int64_t>());
  if (it->is_number_float()) {
    const double v = it->get<double>();
    if (std::isfinite(v) && std::fabs(v) < 9e15) {
      return std::optional<int64_t>(static_cast<int64_t>(std::floor(v)));
    }
  }
  return Error(Denied(fmt::format("claim {} is not a number of seconds", name)));
}

}  // namespace

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=')
    out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

Result<std::string> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) {
    return Error(Code::kInvalidArgument, "base64url text has an impossible length");
  }
  // OpenSSL decodes the standard alphabet with padding; translate after checking that only the
  // URL alphabet is used (no '+', '/', '=' or whitespace, which EVP_DecodeBlock would accept).
  std::string std_text(text);
  for (char& c : std_text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok)
      return Error(Code::kInvalidArgument, "base64url text has a character outside -_A-Za-z0-9");
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  const size_t pad = (4 - std_text.size() % 4) % 4;
  std_text.append(pad, '=');
  std::string out(std_text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(std_text.data()),
                                static_cast<int>(std_text.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) {
    return Error(Code::kInvalidArgument, "base64url text does not decode");
  }
  out.resize(static_cast<size_t>(n) - pad);  // EVP_DecodeBlock counts padding as zero bytes
  return out;
}

std::string_view FidWithoutDelta(std::string_view fid) {
  const size_t sep = fid.rfind('_');
  return sep != std::string_view::npos && sep > 0 ? fid.substr(0, sep) : fid;
}

Result<ReadClaims> VerifyReadJwt(std::string_view token, std::string_view key,
                                 std::chrono::system_clock::time_point now) {
  if (key.empty()) return Error(Denied("no signing key configured"));
  if (token.empty()) return Error(Denied("no token"));
  if (token.size() > kMaxJwtBytes) return Error(Denied("token too long"));
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Error(Denied("not three dot-separated segments"));
  }
  SWRDMA_ASSIGN_OR_RETURN(json header, DecodeSegment(token.substr(0, dot1), "header"));
  auto alg = header.find("alg");
  const EVP_MD* md =
      alg != header.end() && alg->is_string() ? HmacDigest(alg->get<std::string>()) : nullptr;
  if (md == nullptr) return Error(Denied("header alg is not HS256, HS384 or HS512"));
  if (header.contains("crit")) return Error(Denied("critical header extensions are not supported"));

  auto signature = Base64UrlDecode(token.substr(dot2 + 1));
  const std::string mac = Hmac(md, key, token.substr(0, dot2));
  if (!signature || signature->size() != mac.size()) {
    return Error(Denied(fmt::format("signature is not {} bytes", mac.size())));
  }
  if (CRYPTO_memcmp(mac.data(), signature->data(), mac.size()) != 0) {
    return Error(Denied("signature does not verify with the read key"));
  }

  SWRDMA_ASSIGN_OR_RETURN(json claims,
                          DecodeSegment(token.substr(dot1 + 1, dot2 - dot1 - 1), "claims"));
  ReadClaims out;
  SWRDMA_ASSIGN_OR_RETURN(out.exp, NumericDate(claims, "exp"));
  SWRDMA_ASSIGN_OR_RETURN(out.nbf, NumericDate(claims, "nbf"));
  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  // golang-jwt: valid while now < exp, and from nbf on; no leeway.
  if (out.exp && now_s >= *out.exp) return Error(Denied("token expired"));
  if (out.nbf && now_s < *out.nbf) return Error(Denied("token not valid yet"));
  auto fid = claims.find("fid");
  if (fid == claims.end() || !fid->is_string()) return Error(Denied("claim fid missing"));
  out.fid = fid->get<std::string>();
  return out;
}

Status CheckFidClaim(const ReadClaims& claims, std::string_view fid) {
  if (claims.fid == FidWithoutDelta(fid)) return Status();
  return Denied(
      fmt::format("token is for fid {}, not {}", claims.fid.substr(0, 64), fid.substr(0, 64)));
}

std::string SignReadJwt(std::string_view fid, std::string_view key, std::optional<int64_t> exp,
                        std::optional<int64_t> nbf, std::string_view alg) {
  json claims{{"fid", fid}};
  if (exp) claims["exp"] = *exp;
  if (nbf) claims["nbf"] = *nbf;
  const EVP_MD* md = HmacDigest(alg);
  if (md == nullptr) md = EVP_sha256();
  json header{{"alg", md == EVP_sha256() ? "HS256" : std::string(alg)}, {"typ", "JWT"}};
  std::string signing_input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(claims.dump());
  return signing_input + "." + Base64UrlEncode(Hmac(md, key, signing_input));
}

}  // namespace swrdma
