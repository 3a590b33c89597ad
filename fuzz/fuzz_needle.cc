// Fuzzes needle record parsing and verification (protocol/needle.h), the checks a client runs on
// bytes it fetched from a remote volume. Input: 1 byte selecting the version (1..3), then the
// record bytes. A record that parses must verify consistently and survive an encode/parse round
// trip with the same contents.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <source_location>
#include <span>
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "protocol/needle.h"

namespace {

using swrdma::fuzz::Check;

bool SameBytes(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace swrdma;
  if (size < 1) return 0;
  const auto version = static_cast<NeedleVersion>(data[0] % 3 + 1);
  const std::span<const uint8_t> bytes(data + 1, size - 1);

  auto header = ParseNeedleHeader(bytes);
  auto record = ParseNeedleRecord(bytes, version);
  if (!record) {
    Check(record.error().code() == Code::kCorruption);
    return 0;
  }
  Check(header.has_value());
  const NeedleRecord& r = *record;
  // Everything the record points at lies inside the input.
  auto inside = [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    return n == 0 || (b >= bytes.data() && b + n <= bytes.data() + bytes.size());
  };
  Check(inside(r.data.data(), r.data.size()));
  Check(inside(r.name.data(), r.name.size()));
  Check(inside(r.mime.data(), r.mime.size()));
  Check(inside(r.pairs.data(), r.pairs.size()));
  Check(NeedleRecordLengthWithoutPadding(r.header.size, version) <= bytes.size());
  const uint32_t pad = NeedlePadding(r.header.size, version);
  Check(pad >= 1 && pad <= 8);
  Check(NeedleRecordLength(r.header.size, version) % kNeedlePaddingSize == 0);

  // Verification against the record's own header reduces to the checksum check.
  auto verified = VerifyNeedle(r, ExpectedNeedle{r.header.id, r.header.cookie, r.header.size});
  auto checksum = VerifyNeedleChecksum(r);
  Check(verified.has_value() == checksum.has_value());
  if (!checksum) Check(checksum.error().code() == Code::kChecksumMismatch);
  // A wrong cookie is "not found", a wrong id "corruption".
  auto wrong_cookie = VerifyNeedle(r, ExpectedNeedle{r.header.id, r.header.cookie + 1, {}});
  Check(!wrong_cookie && wrong_cookie.error().code() == Code::kNotFound);
  auto wrong_id = VerifyNeedle(r, ExpectedNeedle{r.header.id + 1, r.header.cookie, {}});
  Check(!wrong_id && wrong_id.error().code() == Code::kCorruption);

  // Re-encoding what was parsed gives a record with the same contents and a good checksum.
  if (r.data.empty()) return 0;
  NeedleSpec spec;
  spec.id = r.header.id;
  spec.cookie = r.header.cookie;
  spec.data = r.data;
  spec.gzipped = r.is_gzipped();
  spec.chunk_manifest = r.is_chunk_manifest();
  spec.name = std::string(r.name);
  spec.mime = std::string(r.mime);
  if (r.flags & needle_flags::kHasLastModified) spec.last_modified = r.last_modified;
  if (r.flags & needle_flags::kHasTtl) spec.ttl = std::pair{r.ttl_count, r.ttl_unit};
  spec.pairs = std::string(r.pairs.begin(), r.pairs.end());
  spec.append_at_ns = r.append_at_ns;
  std::vector<uint8_t> out;
  Check(EncodeNeedle(spec, version, out).ok());
  Check(out.size() % kNeedlePaddingSize == 0);
  auto back = ParseNeedleRecord(out, version);
  Check(back.has_value());
  Check(back->header.id == r.header.id && back->header.cookie == r.header.cookie);
  Check(SameBytes(back->data, r.data));
  Check(NeedleRecordLength(back->header.size, version) == out.size());
  auto back_crc = VerifyNeedleChecksum(*back);
  Check(back_crc.has_value() && *back_crc == CrcForm::kRaw);
  if (version != NeedleVersion::kV1) {
    Check(back->name == r.name && back->mime == r.mime);
    Check(SameBytes(back->pairs, r.pairs));
    Check(back->is_gzipped() == r.is_gzipped());
    Check(back->is_chunk_manifest() == r.is_chunk_manifest());
    Check(back->ttl_count == r.ttl_count && back->ttl_unit == r.ttl_unit);
    Check(back->last_modified == r.last_modified);
  }
  if (version == NeedleVersion::kV3) Check(back->append_at_ns == r.append_at_ns);
  return 0;
}
