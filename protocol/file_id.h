// SeaweedFS file ids: "<vid>,<needle id hex><cookie 8 hex>[_<delta>]", e.g. "3,01637037d6".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace swrdma {

struct FileId {
  uint32_t volume_id = 0;
  uint64_t needle_id = 0;  // the delta suffix already added
  uint32_t cookie = 0;

  friend bool operator==(const FileId&, const FileId&) = default;
};

// Parses "3,01637037d6" or "3,01637037d6_2". The key part is 9..24 hex characters, the last 8 the
// cookie; "_N" adds the decimal N to the needle id, as SeaweedFS's Needle.ParsePath does (an
// N that carries the id past 2^64 is an error there too, not a wrap to another needle).
// Errors name the input and what is wrong with it (kInvalidArgument).
Result<FileId> ParseFileId(std::string_view fid);

// Just the "<needle id hex><cookie hex>[_N]" part after the comma.
Result<FileId> ParseNeedleIdCookie(uint32_t volume_id, std::string_view key_cookie);

// Canonical form, as SeaweedFS formats it: leading zero bytes of the needle id dropped, so
// needle 1 / cookie 0x637037d6 in volume 3 is "3,01637037d6".
std::string FormatFileId(const FileId& fid);

// "01637037d6": the part after the comma.
std::string FormatNeedleIdCookie(uint64_t needle_id, uint32_t cookie);

// The fid a SeaweedFS JWT names: the input with any "_N" suffix removed ("3,01637037d6_2" ->
// "3,01637037d6"). No validation beyond that.
std::string_view StripDeltaSuffix(std::string_view fid);

}  // namespace swrdma
