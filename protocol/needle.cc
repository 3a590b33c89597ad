#include "protocol/needle.h"
#include <cstring>
#include <iterator>

#include <fmt/format.h>

#include "protocol/byte_order.h"

namespace swrdma {

Result<NeedleVersion> ToNeedleVersion(uint8_t v) {
  if (v < 1 || v > 3) {
    return Error(Code::kCorruption,
                 fmt::format("unknown needle version {} (SeaweedFS writes 1, 2 or 3)", v));
  }
  return static_cast<NeedleVersion>(v);
}

Result<NeedleHeader> ParseNeedleHeader(std::span<const uint8_t> bytes) {
  if (bytes.size() < kNeedleHeaderSize) {
    return Error(Code::kCorruption,
                 fmt::format("needle header truncated: {} of 16 bytes", bytes.size()));
  }
  const uint8_t* p = bytes.data();
  return NeedleHeader{LoadBe32(p), LoadBe64(p + 4), LoadBe32(p + 12)};
}

uint64_t NeedleRecordLengthWithoutPadding(uint32_t size, NeedleVersion version) {
  uint64_t n = kNeedleHeaderSize + uint64_t{size} + kNeedleChecksumSize;
  if (version == NeedleVersion::kV3) n += kNeedleTimestampSize;
  return n;
}

uint32_t NeedlePadding(uint32_t size, NeedleVersion version) {
  return static_cast<uint32_t>(
      kNeedlePaddingSize - NeedleRecordLengthWithoutPadding(size, version) % kNeedlePaddingSize);
}

uint64_t NeedleRecordLength(uint32_t size, NeedleVersion version) {
  return NeedleRecordLengthWithoutPadding(size, version) + NeedlePadding(size, version);
}

namespace {

// Parses the optional v2/v3 fields after Data. Mirrors SeaweedFS's readNeedleDataVersion2NonData:
// each field is read only while bytes remain, so a body that ends early just lacks later fields.
Status ParseNonData(std::span<const uint8_t> b, NeedleRecord& r) {
  size_t i = 0;
  auto need = [&](size_t n, const char* what) -> Status {
    if (i + n > b.size()) {
      return Status(Code::kCorruption,
                    fmt::format("needle {:x}: {} runs past the end of the body ({} + {} > {})",
                                r.header.id, what, i, n, b.size()));
    }
    return Status::Ok();
  };
  if (i < b.size()) r.flags = b[i++];
  if (i < b.size() && (r.flags & needle_flags::kHasName)) {
    const size_t n = b[i++];
    SWRDMA_RETURN_IF_ERROR(need(n, "name"));
    r.name = std::string_view(reinterpret_cast<const char*>(b.data() + i), n);
    i += n;
  }
  if (i < b.size() && (r.flags & needle_flags::kHasMime)) {
    const size_t n = b[i++];
    SWRDMA_RETURN_IF_ERROR(need(n, "mime type"));
    r.mime = std::string_view(reinterpret_cast<const char*>(b.data() + i), n);
    i += n;
  }
  if (i < b.size() && (r.flags & needle_flags::kHasLastModified)) {
    SWRDMA_RETURN_IF_ERROR(need(kLastModifiedBytes, "last-modified"));
    uint64_t v = 0;
    for (size_t k = 0; k < kLastModifiedBytes; ++k)
      v = (v << 8) | b[i + k];
    r.last_modified = v;
    i += kLastModifiedBytes;
  }
  if (i < b.size() && (r.flags & needle_flags::kHasTtl)) {
    SWRDMA_RETURN_IF_ERROR(need(kTtlBytes, "ttl"));
    r.ttl_count = b[i];
    r.ttl_unit = b[i + 1];
    i += kTtlBytes;
  }
  if (i < b.size() && (r.flags & needle_flags::kHasPairs)) {
    SWRDMA_RETURN_IF_ERROR(need(2, "pairs size"));
    const size_t n = LoadBe16(b.data() + i);
    i += 2;
    SWRDMA_RETURN_IF_ERROR(need(n, "pairs"));
    r.pairs = b.subspan(i, n);
    i += n;
  }
  return Status::Ok();
}

}  // namespace

Result<NeedleRecord> ParseNeedleRecord(std::span<const uint8_t> bytes, NeedleVersion version) {
  SWRDMA_ASSIGN_OR_RETURN(NeedleHeader header, ParseNeedleHeader(bytes));
  const uint64_t need = NeedleRecordLengthWithoutPadding(header.size, version);
  if (bytes.size() < need) {
    return Error(Code::kCorruption,
                 fmt::format("needle {:x}: record truncated: header says body size {} so {} bytes "
                             "are needed, have {}",
                             header.id, header.size, need, bytes.size()));
  }
  NeedleRecord r;
  r.version = version;
  r.header = header;
  const auto body = bytes.subspan(kNeedleHeaderSize, header.size);
  if (version == NeedleVersion::kV1) {
    r.data = body;
  } else if (header.size > 0) {
    if (body.size() < 4) {
      return Error(Code::kCorruption,
                   fmt::format("needle {:x}: body of {} bytes has no room for DataSize", header.id,
                               body.size()));
    }
    const uint32_t data_size = LoadBe32(body.data());
    if (uint64_t{data_size} + 4 > body.size()) {
      return Error(Code::kCorruption, fmt::format("needle {:x}: DataSize {} exceeds body size {}",
                                                  header.id, data_size, body.size()));
    }
    r.data = body.subspan(4, data_size);
    SWRDMA_RETURN_IF_ERROR(ParseNonData(body.subspan(4 + data_size), r));
  }
  const uint8_t* tail = bytes.data() + kNeedleHeaderSize + header.size;
  r.checksum = LoadBe32(tail);
  if (version == NeedleVersion::kV3) r.append_at_ns = LoadBe64(tail + kNeedleChecksumSize);
  return r;
}

Result<CrcForm> VerifyNeedleChecksum(const NeedleRecord& record) {
  if (record.data.empty()) return CrcForm::kRaw;
  const uint32_t computed = Crc32c(record.data);
  const CrcForm form = MatchCrc(record.checksum, computed);
  if (form == CrcForm::kMismatch) {
    return Error(
        Code::kChecksumMismatch,
        fmt::format("needle {:x}: CRC mismatch: stored {:08x}, data ({} bytes) has CRC-32C "
                    "{:08x} (legacy form {:08x})",
                    record.header.id, record.checksum, record.data.size(), computed,
                    LegacyCrcValue(computed)));
  }
  return form;
}

Result<CrcForm> VerifyNeedle(const NeedleRecord& record, const ExpectedNeedle& expected) {
  const NeedleHeader& h = record.header;
  if (h.id != expected.id) {
    return Error(Code::kCorruption,
                 fmt::format("record header names needle {:x}, expected {:x} (stale location or "
                             "corrupt volume)",
                             h.id, expected.id));
  }
  if (expected.size && h.size != *expected.size) {
    return Error(Code::kCorruption,
                 fmt::format("needle {:x}: record header size {} differs from index size {}", h.id,
                             h.size, *expected.size));
  }
  if (h.cookie != expected.cookie) {
    return Error(Code::kNotFound, fmt::format("needle {:x}: cookie mismatch (file id has {:08x})",
                                              h.id, expected.cookie));
  }
  return VerifyNeedleChecksum(record);
}

Status EncodeNeedle(const NeedleSpec& spec, NeedleVersion version, std::vector<uint8_t>& out) {
  if (spec.name.size() > 255 || spec.mime.size() > 255) {
    return Status(Code::kInvalidArgument, "needle name and mime type are limited to 255 bytes");
  }
  if (spec.pairs.size() > 65535) {
    return Status(Code::kInvalidArgument, "needle pairs are limited to 65535 bytes");
  }
  if (spec.data.size() > 0xFFFFFFF0u) {
    return Status(Code::kInvalidArgument, "needle data is limited to 4 GiB");
  }
  const uint32_t data_size = static_cast<uint32_t>(spec.data.size());
  uint8_t flags = 0;
  uint64_t size = 0;
  if (version == NeedleVersion::kV1) {
    size = data_size;
  } else if (data_size > 0) {
    if (spec.gzipped) flags |= needle_flags::kGzip;
    if (spec.chunk_manifest) flags |= needle_flags::kIsChunkManifest;
    size = 4 + uint64_t{data_size} + 1;
    if (!spec.name.empty()) flags |= needle_flags::kHasName, size += 1 + spec.name.size();
    if (!spec.mime.empty()) flags |= needle_flags::kHasMime, size += 1 + spec.mime.size();
    if (spec.last_modified) flags |= needle_flags::kHasLastModified, size += kLastModifiedBytes;
    if (spec.ttl) flags |= needle_flags::kHasTtl, size += kTtlBytes;
    if (!spec.pairs.empty()) flags |= needle_flags::kHasPairs, size += 2 + spec.pairs.size();
  }
  if (size > 0xFFFFFFF0u) return Status(Code::kInvalidArgument, "needle record exceeds 4 GiB");
  const uint32_t size32 = static_cast<uint32_t>(size);

  const size_t start = out.size();
  out.resize(start + NeedleRecordLength(size32, version), 0);
  uint8_t* p = out.data() + start;
  StoreBe32(p, spec.cookie);
  StoreBe64(p + 4, spec.id);
  StoreBe32(p + 12, size32);
  p += kNeedleHeaderSize;
  auto put = [&p](const void* src, size_t n) {
    if (n) std::memcpy(p, src, n);
    p += n;
  };
  if (version == NeedleVersion::kV1) {
    put(spec.data.data(), data_size);
  } else if (data_size > 0) {
    StoreBe32(p, data_size);
    p += 4;
    put(spec.data.data(), data_size);
    *p++ = flags;
    if (flags & needle_flags::kHasName) {
      *p++ = static_cast<uint8_t>(spec.name.size());
      put(spec.name.data(), spec.name.size());
    }
    if (flags & needle_flags::kHasMime) {
      *p++ = static_cast<uint8_t>(spec.mime.size());
      put(spec.mime.data(), spec.mime.size());
    }
    if (flags & needle_flags::kHasLastModified) {
      const uint64_t lm = *spec.last_modified;
      for (size_t k = 0; k < kLastModifiedBytes; ++k) {
        *p++ = static_cast<uint8_t>(lm >> (8 * (kLastModifiedBytes - 1 - k)));
      }
    }
    if (flags & needle_flags::kHasTtl) {
      *p++ = spec.ttl->first;
      *p++ = spec.ttl->second;
    }
    if (flags & needle_flags::kHasPairs) {
      StoreBe16(p, static_cast<uint16_t>(spec.pairs.size()));
      p += 2;
      put(spec.pairs.data(), spec.pairs.size());
    }
  }
  const uint32_t crc = data_size ? Crc32c(spec.data) : 0;
  StoreBe32(p, spec.legacy_crc && data_size ? LegacyCrcValue(crc) : crc);
  p += kNeedleChecksumSize;
  if (version == NeedleVersion::kV3) StoreBe64(p, spec.append_at_ns);
  return Status::Ok();
}

uint32_t TtlMinutes(uint8_t count, uint8_t unit) {
  static constexpr uint32_t kMinutes[] = {
      0, 1, 60, 60 * 24, 60 * 24 * 7, 60 * 24 * 30, 60 * 24 * 365};
  return unit < std::size(kMinutes) ? count * kMinutes[unit] : 0;
}

bool NeedleExpired(const NeedleRecord& record, uint64_t now_ns) {
  if (!(record.flags & needle_flags::kHasTtl)) return false;
  const uint64_t minutes = TtlMinutes(record.ttl_count, record.ttl_unit);
  if (minutes == 0) return false;
  if (!(record.flags & needle_flags::kHasLastModified)) return false;
  // Go: time.Now().Before(time.Unix(0, AppendAtNs).Add(minutes)) means still alive.
  const uint64_t until = record.append_at_ns + minutes * 60'000'000'000ull;
  return now_ns >= until;
}

}  // namespace swrdma
