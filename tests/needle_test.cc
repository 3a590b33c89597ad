#include "protocol/needle.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/byte_order.h"

namespace swrdma {
namespace {

std::vector<uint8_t> Data(size_t n, uint8_t seed = 1) {
  std::vector<uint8_t> d(n);
  for (size_t i = 0; i < n; ++i)
    d[i] = static_cast<uint8_t>(seed + i * 7);
  return d;
}

std::vector<uint8_t> Encode(const NeedleSpec& spec, NeedleVersion v) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(EncodeNeedle(spec, v, out).ok());
  return out;
}

TEST(Needle, PaddingIsOneToEightAndRecordsAreAligned) {
  for (NeedleVersion v : {NeedleVersion::kV1, NeedleVersion::kV2, NeedleVersion::kV3}) {
    for (uint32_t size = 0; size < 64; ++size) {
      const uint32_t pad = NeedlePadding(size, v);
      EXPECT_GE(pad, 1u);
      EXPECT_LE(pad, 8u);
      EXPECT_EQ(NeedleRecordLength(size, v) % 8, 0u);
    }
  }
  // 16 + 0 + 4 + 8 = 28 -> 4 bytes of padding; 16 + 4 + 4 = 24 -> a full 8.
  EXPECT_EQ(NeedleRecordLength(0, NeedleVersion::kV3), 32u);
  EXPECT_EQ(NeedlePadding(4, NeedleVersion::kV2), 8u);
  EXPECT_EQ(NeedleRecordLength(4, NeedleVersion::kV2), 32u);
}

TEST(Needle, EncodesTheDocumentedLayoutV3) {
  auto data = Data(10);
  NeedleSpec spec;
  spec.id = 0x0102030405060708;
  spec.cookie = 0xdeadbeef;
  spec.data = data;
  spec.name = "a.txt";
  spec.mime = "text/plain";
  spec.last_modified = 0x0123456789;
  spec.append_at_ns = 0x1122334455667788;
  auto rec = Encode(spec, NeedleVersion::kV3);
  // size = 4 + 10 + 1 + (1+5) + (1+10) + 5 = 37
  ASSERT_EQ(LoadBe32(rec.data() + 12), 37u);
  EXPECT_EQ(rec.size(), NeedleRecordLength(37, NeedleVersion::kV3));
  EXPECT_EQ(LoadBe32(rec.data()), 0xdeadbeefu);
  EXPECT_EQ(LoadBe64(rec.data() + 4), 0x0102030405060708u);
  EXPECT_EQ(LoadBe32(rec.data() + 16), 10u);  // DataSize
  EXPECT_EQ(rec[16 + 4 + 10],
            needle_flags::kHasName | needle_flags::kHasMime | needle_flags::kHasLastModified);
  EXPECT_EQ(LoadBe32(rec.data() + 16 + 37), Crc32c(data));
  EXPECT_EQ(LoadBe64(rec.data() + 16 + 37 + 4), 0x1122334455667788u);
}

TEST(Needle, RoundTripsEveryVersionAndField) {
  for (NeedleVersion v : {NeedleVersion::kV1, NeedleVersion::kV2, NeedleVersion::kV3}) {
    for (size_t n : {size_t{1}, size_t{7}, size_t{4096}, size_t{100000}}) {
      auto data = Data(n, static_cast<uint8_t>(n));
      NeedleSpec spec;
      spec.id = 77 + n;
      spec.cookie = 0x12345678;
      spec.data = data;
      spec.gzipped = true;
      spec.name = "file.bin";
      spec.mime = "application/octet-stream";
      spec.last_modified = 1700000000;
      spec.ttl = std::pair<uint8_t, uint8_t>{3, 2};
      spec.pairs = R"({"Seaweed-x":"y"})";
      spec.append_at_ns = 123456789;
      auto rec = Encode(spec, v);
      auto parsed = ParseNeedleRecord(rec, v);
      ASSERT_TRUE(parsed) << parsed.error().ToString();
      EXPECT_EQ(parsed->header.id, spec.id);
      EXPECT_EQ(parsed->header.cookie, spec.cookie);
      EXPECT_TRUE(std::equal(parsed->data.begin(), parsed->data.end(), data.begin(), data.end()));
      auto form = VerifyNeedle(*parsed, {spec.id, spec.cookie, parsed->header.size});
      ASSERT_TRUE(form) << form.error().ToString();
      EXPECT_EQ(*form, CrcForm::kRaw);
      if (v == NeedleVersion::kV1) continue;  // v1 has no fields beyond data
      EXPECT_TRUE(parsed->is_gzipped());
      EXPECT_EQ(parsed->name, "file.bin");
      EXPECT_EQ(parsed->mime, "application/octet-stream");
      EXPECT_EQ(parsed->last_modified, 1700000000u);
      EXPECT_EQ(parsed->ttl_count, 3);
      EXPECT_EQ(parsed->ttl_unit, 2);
      EXPECT_EQ(std::string(parsed->pairs.begin(), parsed->pairs.end()), spec.pairs);
      if (v == NeedleVersion::kV3) {
        EXPECT_EQ(parsed->append_at_ns, 123456789u);
      }
    }
  }
}

TEST(Needle, LegacyChecksumIsAccepted) {
  auto data = Data(300);
  NeedleSpec spec{.id = 5, .cookie = 9, .data = data, .legacy_crc = true};
  auto rec = Encode(spec, NeedleVersion::kV3);
  auto parsed = ParseNeedleRecord(rec, NeedleVersion::kV3);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->checksum, LegacyCrcValue(Crc32c(data)));
  auto form = VerifyNeedle(*parsed, {5, 9, std::nullopt});
  ASSERT_TRUE(form);
  EXPECT_EQ(*form, CrcForm::kLegacy);
}

TEST(Needle, FlippedDataByteFailsTheCrc) {
  auto data = Data(4096);
  NeedleSpec spec{.id = 5, .cookie = 9, .data = data};
  auto rec = Encode(spec, NeedleVersion::kV2);
  rec[16 + 4 + 1000] ^= 0x40;
  auto parsed = ParseNeedleRecord(rec, NeedleVersion::kV2);
  ASSERT_TRUE(parsed);
  auto form = VerifyNeedle(*parsed, {5, 9, std::nullopt});
  ASSERT_FALSE(form);
  EXPECT_EQ(form.error().code(), Code::kChecksumMismatch);
  EXPECT_NE(form.error().message().find("CRC"), std::string::npos);
}

TEST(Needle, WrongIdCookieOrSizeIsDetected) {
  auto data = Data(64);
  NeedleSpec spec{.id = 5, .cookie = 9, .data = data};
  auto rec = Encode(spec, NeedleVersion::kV3);
  auto parsed = ParseNeedleRecord(rec, NeedleVersion::kV3);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(VerifyNeedle(*parsed, {6, 9, std::nullopt}).error().code(), Code::kCorruption);
  EXPECT_EQ(VerifyNeedle(*parsed, {5, 10, std::nullopt}).error().code(), Code::kNotFound);
  EXPECT_EQ(VerifyNeedle(*parsed, {5, 9, parsed->header.size + 8}).error().code(),
            Code::kCorruption);
}

TEST(Needle, TombstoneHasNoBody) {
  NeedleSpec spec{.id = 5, .cookie = 9};
  auto rec = Encode(spec, NeedleVersion::kV3);
  EXPECT_EQ(rec.size(), 32u);
  auto parsed = ParseNeedleRecord(rec, NeedleVersion::kV3);
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->is_tombstone());
  EXPECT_TRUE(parsed->data.empty());
  EXPECT_TRUE(VerifyNeedle(*parsed, {5, 9, 0u}).has_value());
}

TEST(Needle, TruncatedRecordsAreRejected) {
  auto data = Data(100);
  NeedleSpec spec{.id = 5, .cookie = 9, .data = data};
  auto rec = Encode(spec, NeedleVersion::kV3);
  const size_t full =
      NeedleRecordLengthWithoutPadding(LoadBe32(rec.data() + 12), NeedleVersion::kV3);
  for (size_t cut : {size_t{0}, size_t{15}, size_t{16}, size_t{50}, full - 1}) {
    auto parsed = ParseNeedleRecord(std::span(rec).first(cut), NeedleVersion::kV3);
    ASSERT_FALSE(parsed) << cut;
    EXPECT_EQ(parsed.error().code(), Code::kCorruption);
  }
  EXPECT_TRUE(ParseNeedleRecord(std::span(rec).first(full), NeedleVersion::kV3));
}

TEST(Needle, InconsistentBodyIsRejectedNotOverread) {
  auto data = Data(100);
  NeedleSpec spec{.id = 5, .cookie = 9, .data = data, .name = "n"};
  auto rec = Encode(spec, NeedleVersion::kV2);
  auto bad = rec;
  StoreBe32(bad.data() + 16, 200);  // DataSize beyond the body
  EXPECT_EQ(ParseNeedleRecord(bad, NeedleVersion::kV2).error().code(), Code::kCorruption);
  bad = rec;
  bad[16 + 4 + 100 + 1] = 250;  // NameSize beyond the body
  EXPECT_EQ(ParseNeedleRecord(bad, NeedleVersion::kV2).error().code(), Code::kCorruption);
  bad = rec;
  StoreBe32(bad.data() + 12, 2);  // body too small for DataSize
  EXPECT_EQ(ParseNeedleRecord(bad, NeedleVersion::kV2).error().code(), Code::kCorruption);
}

TEST(Needle, OversizedFieldsAreRefused) {
  auto data = Data(1);
  NeedleSpec spec{.id = 1, .cookie = 1, .data = data, .name = std::string(256, 'x')};
  std::vector<uint8_t> out;
  EXPECT_EQ(EncodeNeedle(spec, NeedleVersion::kV3, out).code(), Code::kInvalidArgument);
}

TEST(Needle, VersionsOtherThanOneToThreeAreCorruption) {
  EXPECT_TRUE(ToNeedleVersion(3));
  EXPECT_EQ(ToNeedleVersion(0).error().code(), Code::kCorruption);
  EXPECT_EQ(ToNeedleVersion(4).error().code(), Code::kCorruption);
}

// Issue 15 (4): weed's expiry rule, exactly (weed/storage/volume_read.go, needle/volume_ttl.go).
TEST(Needle, TtlExpiryIsWeedsRule) {
  EXPECT_EQ(TtlMinutes(3, 1), 3u);
  EXPECT_EQ(TtlMinutes(2, 2), 120u);
  EXPECT_EQ(TtlMinutes(1, 3), 1440u);
  EXPECT_EQ(TtlMinutes(1, 4), 10080u);
  EXPECT_EQ(TtlMinutes(1, 5), 43200u);
  EXPECT_EQ(TtlMinutes(255, 6), 255u * 525600u);
  EXPECT_EQ(TtlMinutes(5, 0), 0u);
  EXPECT_EQ(TtlMinutes(5, 7), 0u);
  EXPECT_EQ(TtlMinutes(0, 2), 0u);

  const uint64_t append = 1'800'000'000'000'000'000ull;  // ns
  const uint64_t minute = 60'000'000'000ull;
  auto record = [&](std::optional<std::pair<uint8_t, uint8_t>> ttl, bool last_modified,
                    NeedleVersion v, std::vector<uint8_t>& buf) {
    static const auto data = Data(10);
    NeedleSpec spec;
    spec.id = 1;
    spec.cookie = 2;
    spec.data = data;
    spec.ttl = ttl;
    if (last_modified) spec.last_modified = append / 1'000'000'000;
    spec.append_at_ns = append;
    buf = Encode(spec, v);
    return *ParseNeedleRecord(buf, v);
  };
  std::vector<uint8_t> buf;
  auto r = record(std::pair<uint8_t, uint8_t>{2, 1}, true, NeedleVersion::kV3, buf);  // 2 minutes
  EXPECT_FALSE(NeedleExpired(r, append));
  EXPECT_FALSE(NeedleExpired(r, append + 2 * minute - 1));
  EXPECT_TRUE(NeedleExpired(r, append + 2 * minute));  // alive only while now is before
  // Base is AppendAtNs, not LastModified: a LastModified far in the past changes nothing.
  r.last_modified = 1;
  EXPECT_FALSE(NeedleExpired(r, append + minute));
  // No LastModified flag, no TTL flag, unit 0 or > 6: never expires.
  EXPECT_FALSE(
      NeedleExpired(record(std::pair<uint8_t, uint8_t>{2, 1}, false, NeedleVersion::kV3, buf),
                    append + 100 * minute));
  EXPECT_FALSE(NeedleExpired(record(std::nullopt, true, NeedleVersion::kV3, buf), ~0ull));
  EXPECT_FALSE(NeedleExpired(
      record(std::pair<uint8_t, uint8_t>{2, 0}, true, NeedleVersion::kV3, buf), ~0ull));
  EXPECT_FALSE(NeedleExpired(
      record(std::pair<uint8_t, uint8_t>{2, 9}, true, NeedleVersion::kV3, buf), ~0ull));
  // Version 2 has no AppendAtNs (0): with a TTL it reads as expired, as on the volume server.
  EXPECT_TRUE(NeedleExpired(
      record(std::pair<uint8_t, uint8_t>{1, 6}, true, NeedleVersion::kV2, buf), append));
}

}  // namespace
}  // namespace swrdma
