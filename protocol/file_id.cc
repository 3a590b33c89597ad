#include "protocol/file_id.h"

#include <charconv>
#include <limits>

#include <fmt/format.h>

namespace swrdma {
namespace {

constexpr size_t kCookieHexLen = 8;
constexpr size_t kMaxKeyHexLen = 24;  // 16 hex of needle id + 8 of cookie

bool ParseHex(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool IsDecimal(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

Result<FileId> ParseNeedleIdCookie(uint32_t volume_id, std::string_view key_cookie) {
  std::string_view key = key_cookie;
  std::string_view delta;
  if (size_t us = key.rfind('_'); us != std::string_view::npos && us > 0) {
    delta = key.substr(us + 1);
    key = key.substr(0, us);
  }
  if (key.size() <= kCookieHexLen) {
    return Error(Code::kInvalidArgument,
                 fmt::format("file id key '{}' is too short: needs 9 to 24 hex characters "
                             "(needle id then an 8-hex cookie)",
                             key_cookie));
  }
  if (key.size() > kMaxKeyHexLen) {
    return Error(
        Code::kInvalidArgument,
        fmt::format("file id key '{}' is too long: at most 24 hex characters", key_cookie));
  }
  const size_t split = key.size() - kCookieHexLen;
  uint64_t needle_id = 0;
  uint64_t cookie = 0;
  if (!ParseHex(key.substr(0, split), needle_id) || !ParseHex(key.substr(split), cookie)) {
    return Error(Code::kInvalidArgument,
                 fmt::format("file id key '{}' is not hexadecimal", key_cookie));
  }
  // An empty suffix ("..._") is ignored, as SeaweedFS does.
  if (!delta.empty()) {
    uint64_t d = 0;
    auto [ptr, ec] = std::from_chars(delta.data(), delta.data() + delta.size(), d, 10);
    if (!IsDecimal(delta) || ec != std::errc() || ptr != delta.data() + delta.size()) {
      return Error(
          Code::kInvalidArgument,
          fmt::format("file id '{}' has a bad delta suffix '_{}': expected a decimal number",
                      key_cookie, delta));
    }
    // weed's Needle.ParsePath refuses a delta that would carry the id past 2^64 (the volume
    // server answers 400): wrapping would name another needle.
    if (d > std::numeric_limits<uint64_t>::max() - needle_id) {
      return Error(Code::kInvalidArgument,
                   fmt::format("file id '{}': delta _{} overflows needle id {:x}", key_cookie, d,
                               needle_id));
    }
    needle_id += d;
  }
  return FileId{volume_id, needle_id, static_cast<uint32_t>(cookie)};
}

Result<FileId> ParseFileId(std::string_view fid) {
  const size_t comma = fid.find(',');
  if (comma == std::string_view::npos) {
    return Error(Code::kInvalidArgument,
                 fmt::format("file id '{}' has no comma: expected '<volume id>,<key><cookie>' "
                             "such as 3,01637037d6",
                             fid.substr(0, 64)));
  }
  std::string_view vid_part = fid.substr(0, comma);
  uint32_t vid = 0;
  auto [ptr, ec] = std::from_chars(vid_part.data(), vid_part.data() + vid_part.size(), vid, 10);
  if (!IsDecimal(vid_part) || ec != std::errc() || ptr != vid_part.data() + vid_part.size()) {
    return Error(Code::kInvalidArgument,
                 fmt::format("file id '{}' has a bad volume id '{}': expected a decimal number "
                             "below 2^32",
                             fid.substr(0, 64), vid_part.substr(0, 32)));
  }
  auto parsed = ParseNeedleIdCookie(vid, fid.substr(comma + 1));
  if (!parsed) return Error(parsed.error());
  return parsed;
}

std::string FormatNeedleIdCookie(uint64_t needle_id, uint32_t cookie) {
  // 8 bytes of id + 4 of cookie, hex, leading zero bytes of the id dropped (never the cookie's).
  std::string full = fmt::format("{:016x}{:08x}", needle_id, cookie);
  size_t skip = 0;
  while (skip < 16 && full[skip] == '0' && full[skip + 1] == '0')
    skip += 2;
  return full.substr(skip);
}

std::string FormatFileId(const FileId& fid) {
  return fmt::format("{},{}", fid.volume_id, FormatNeedleIdCookie(fid.needle_id, fid.cookie));
}

std::string_view StripDeltaSuffix(std::string_view fid) {
  const size_t comma = fid.find(',');
  const size_t us = fid.rfind('_');
  if (us == std::string_view::npos || (comma != std::string_view::npos && us < comma)) return fid;
  return fid.substr(0, us);
}

}  // namespace swrdma
