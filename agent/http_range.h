// Range requests as the volume server answers them (weed/server/common.go ProcessRangeRequest and
// its parseRange, ported from net/http): several ranges give a 206 multipart/byteranges, ranges
// adding up to more than the body are ignored, If-Range decides whether the Range counts.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "http/http_server.h"

namespace swrdma::agent {

struct GoRange {
  uint64_t start = 0, length = 0;
};

enum class RangeError { kInvalid, kNoOverlap };

// parseRange: "bytes=0-9,-5,100-". Empty specs are skipped; a spec starting at or past the end
// does not overlap (kNoOverlap only when no spec does); anything malformed is kInvalid.
std::expected<std::vector<GoRange>, RangeError> GoParseRange(std::string_view header,
                                                             uint64_t size);

// ifRangeMatches: an empty If-Range matches; an entity tag matches a strong ETag equal to it; a
// date matches a Last-Modified equal to it.
bool IfRangeMatches(std::string_view if_range, const std::vector<HttpHeader>& response_headers);

// Applies the request's Range to `resp` whose full body is `body` (status 200, headers set):
// as ProcessRangeRequest, 206 with Content-Range for one range, 206 multipart/byteranges for
// several (each part with Content-Range and Content-Type `mime`), 416 (with Content-Range
// "bytes */size" when nothing overlaps), or 200 with an empty body when the ranges add up to
// more than the body (weed writes nothing then). No Range, or an If-Range that does not match:
// unchanged. `boundary` is the multipart boundary (random in weed).
void ApplyRange(const HttpRequest& req, std::string_view mime, std::string_view boundary,
                HttpResponse& resp, std::string& body);

}  // namespace swrdma::agent
