// Fuzzes SeaweedFS file id parsing (protocol/file_id.h): every input either fails with
// kInvalidArgument or parses to a FileId whose canonical form parses back to the same id.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <source_location>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "protocol/file_id.h"

namespace {

using swrdma::fuzz::Check;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace swrdma;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // Needle id 0 formats to the bare 8-hex cookie, which does not parse back: SeaweedFS's
  // formatNeedleIdCookie / ParseNeedleIdCookie behave the same, and its sequencer never hands out
  // id 0. Round trips are checked for every other id.
  auto fid = ParseFileId(input);
  if (fid && fid->needle_id != 0) {
    // The canonical form is stable: format(parse(format(x))) == format(x), same FileId.
    const std::string canonical = FormatFileId(*fid);
    auto again = ParseFileId(canonical);
    Check(again.has_value() && *again == *fid);
    Check(FormatFileId(*again) == canonical);
    // Stripping the delta suffix leaves something that still parses (the JWT's fid).
    Check(ParseFileId(StripDeltaSuffix(input)).has_value());
  } else if (!fid) {
    Check(fid.error().code() == Code::kInvalidArgument);
    Check(!fid.error().message().empty());
  }

  // The key part alone, with an arbitrary volume id.
  auto key = ParseNeedleIdCookie(7, input);
  if (key) Check(key->volume_id == 7);
  if (key && key->needle_id != 0) {
    auto again = ParseNeedleIdCookie(7, FormatNeedleIdCookie(key->needle_id, key->cookie));
    Check(again.has_value() && *again == *key);
  } else if (!key) {
    Check(key.error().code() == Code::kInvalidArgument);
  }
  (void)StripDeltaSuffix(input);
  return 0;
}
