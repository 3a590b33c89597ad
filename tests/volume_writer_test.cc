#include "volume/volume_writer.h"

#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/byte_order.h"
#include "protocol/gzip.h"
#include "tests/test_util.h"
#include "volume/volume_files.h"
#include "volume/volume_generator.h"

namespace swrdma {
namespace {

std::vector<uint8_t> ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::filesystem::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// A volume as a reader sees it: superblock, every .idx entry, and the live map after replay.
struct VolumeImage {
  SuperBlock sb;
  std::vector<uint8_t> dat;
  std::vector<IdxEntry> entries;
  std::map<uint64_t, IdxEntry> live;
};

VolumeImage Load(const VolumeFiles& files, OffsetWidth w) {
  VolumeImage img;
  img.dat = ReadAll(files.dat);
  auto sb = ParseSuperBlock(img.dat);
  EXPECT_TRUE(sb) << sb.error().ToString();
  if (sb) img.sb = *sb;
  const std::vector<uint8_t> idx = ReadAll(files.idx);
  const IdxScanStats stats = ScanIdx(idx, w, [&](const IdxEntry& e) {
    img.entries.push_back(e);
    if (e.is_deletion()) {
      img.live.erase(e.needle_id);
    } else {
      img.live[e.needle_id] = e;
    }
  });
  EXPECT_EQ(stats.damaged_tail_bytes, 0u);
  return img;
}

// Parses the record an .idx entry points to (padding included in the span).
NeedleRecord RecordAt(const VolumeImage& img, const IdxEntry& e) {
  EXPECT_EQ(e.offset % 8, 0u);
  EXPECT_LT(e.offset, img.dat.size());
  auto rec = ParseNeedleRecord(std::span(img.dat).subspan(e.offset), img.sb.version);
  EXPECT_TRUE(rec) << rec.error().ToString();
  return rec.value_or(NeedleRecord{});
}

std::vector<uint8_t> Bytes(std::string_view s) {
  return {s.begin(), s.end()};
}

VolumeWriterOptions Options(const testing::TempDir& dir, NeedleVersion v = NeedleVersion::kV3,
                            OffsetWidth w = OffsetWidth::k4) {
  VolumeWriterOptions o;
  o.dir = dir.path();
  o.volume_id = 7;
  o.version = v;
  o.offset_width = w;
  o.replica_placement = 2;
  o.compaction_revision = 3;
  return o;
}

TEST(VolumeWriter, CreateWritesSuperblockAndVifAndRefusesExistingFiles) {
  testing::TempDir dir;
  auto w = VolumeWriter::Create(Options(dir, NeedleVersion::kV3, OffsetWidth::k5));
  ASSERT_TRUE(w) << w.error().ToString();
  EXPECT_EQ(w->dat_size(), 8u);
  EXPECT_EQ(ReadAll(dir / "7.dat"), (std::vector<uint8_t>{3, 2, 0, 0, 0, 3, 0, 0}));
  EXPECT_TRUE(ReadAll(dir / "7.idx").empty());
  ASSERT_TRUE(w->files().vif);
  EXPECT_EQ(VolumeOffsetWidth(w->files(), OffsetWidth::k4).value(), OffsetWidth::k5);

  auto again = VolumeWriter::Create(Options(dir));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kInvalidArgument);
  EXPECT_NE(again.error().message().find("7.dat"), std::string::npos);

  VolumeWriterOptions coll = Options(dir);
  coll.collection = "pics_x";
  auto c = VolumeWriter::Create(coll);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->files().dat, dir / "pics_x_7.dat");

  VolumeWriterOptions nodir = Options(dir);
  nodir.dir = dir / "missing";
  auto m = VolumeWriter::Create(nodir);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), Code::kIOError);
}

TEST(VolumeWriter, AppendedRecordsParseBackByteForByte) {
  for (NeedleVersion v : {NeedleVersion::kV2, NeedleVersion::kV3}) {
    testing::TempDir dir;
    auto w = VolumeWriter::Create(Options(dir, v));
    ASSERT_TRUE(w);
    const std::vector<uint8_t> text = Bytes("hello seaweed hello seaweed hello seaweed");
    auto gz = Gzip(text);
    ASSERT_TRUE(gz);
    const std::vector<uint8_t> one = {0x42};
    std::vector<uint8_t> big(100'000);
    for (size_t i = 0; i < big.size(); ++i)
      big[i] = static_cast<uint8_t>(i * 31 + 7);

    std::vector<NeedleSpec> specs(4);
    specs[0].id = 1, specs[0].cookie = 0x11111111, specs[0].data = one;
    specs[1].id = 0x1234567890, specs[1].cookie = 0xdeadbeef, specs[1].data = *gz;
    specs[1].gzipped = true, specs[1].name = "a.txt", specs[1].mime = "text/plain";
    specs[1].last_modified = 1'700'000'000;
    specs[2].id = 3, specs[2].cookie = 3, specs[2].data = big, specs[2].legacy_crc = true;
    specs[2].ttl = std::make_pair(uint8_t{5}, uint8_t{3}), specs[2].pairs = R"({"X-A":"b"})";
    specs[3].id = 4, specs[3].cookie = 0, specs[3].data = text;

    std::vector<IdxEntry> returned;
    uint64_t expected_offset = 8;
    for (const NeedleSpec& s : specs) {
      auto e = w->Append(s);
      ASSERT_TRUE(e) << e.error().ToString();
      EXPECT_EQ(e->offset, expected_offset);
      expected_offset += NeedleRecordLength(e->size, v);
      EXPECT_EQ(w->dat_size(), expected_offset);
      returned.push_back(*e);
    }
    ASSERT_TRUE(w->Sync().ok());

    const VolumeImage img = Load(w->files(), OffsetWidth::k4);
    EXPECT_EQ(img.sb.version, v);
    EXPECT_EQ(img.dat.size(), expected_offset);
    EXPECT_EQ(img.entries, returned);
    uint64_t last_ns = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
      const NeedleSpec& s = specs[i];
      const NeedleRecord r = RecordAt(img, returned[i]);
      auto form = VerifyNeedle(r, {s.id, s.cookie, returned[i].size});
      ASSERT_TRUE(form) << form.error().ToString();
      EXPECT_EQ(*form, s.legacy_crc ? CrcForm::kLegacy : CrcForm::kRaw);
      EXPECT_TRUE(std::equal(r.data.begin(), r.data.end(), s.data.begin(), s.data.end()));
      EXPECT_EQ(r.is_gzipped(), s.gzipped);
      EXPECT_EQ(r.name, s.name);
      EXPECT_EQ(r.mime, s.mime);
      EXPECT_EQ(r.last_modified, s.last_modified.value_or(0));
      // The record is exactly what EncodeNeedle makes, except AppendAtNs which the writer sets.
      NeedleSpec stamped = s;
      stamped.append_at_ns = r.append_at_ns;
      std::vector<uint8_t> want;
      ASSERT_TRUE(EncodeNeedle(stamped, v, want).ok());
      EXPECT_TRUE(std::equal(want.begin(), want.end(), img.dat.begin() + returned[i].offset));
      if (v == NeedleVersion::kV3) {
        EXPECT_GT(r.append_at_ns, last_ns);
        last_ns = r.append_at_ns;
      }
    }
    auto gunzipped = Gunzip(RecordAt(img, returned[1]).data);
    ASSERT_TRUE(gunzipped);
    EXPECT_EQ(*gunzipped, text);
  }
}

TEST(VolumeWriter, DeleteAppendsATombstoneLikeAVolumeServer) {
  testing::TempDir dir;
  auto w = VolumeWriter::Create(Options(dir));
  ASSERT_TRUE(w);
  const std::vector<uint8_t> data = Bytes("to be deleted");
  NeedleSpec s;
  s.id = 0x14, s.cookie = 0x3b2e4ea7, s.data = data;
  auto e = w->Append(s);
  ASSERT_TRUE(e);
  const uint64_t tomb_offset = w->dat_size();

  EXPECT_EQ(w->Delete(0x14, 0x12345678).code(), Code::kNotFound);  // wrong cookie
  EXPECT_EQ(w->Delete(0x99, 0x3b2e4ea7).code(), Code::kNotFound);  // unknown needle
  ASSERT_TRUE(w->Delete(0x14, 0x3b2e4ea7).ok());
  EXPECT_EQ(w->Delete(0x14, 0x3b2e4ea7).code(), Code::kNotFound);  // already deleted
  EXPECT_EQ(w->dat_size(), tomb_offset + 32);                      // 16 + 0 + 4 + 8 + 4 padding
  EXPECT_EQ(w->live_needles(), 0u);

  const VolumeImage img = Load(w->files(), OffsetWidth::k4);
  ASSERT_EQ(img.entries.size(), 2u);
  // As in healthy_volume.idx: the tombstone entry points at the tombstone record itself.
  EXPECT_EQ(img.entries[1], (IdxEntry{0x14, tomb_offset, kTombstoneSize}));
  EXPECT_TRUE(img.live.empty());
  auto tomb = ParseNeedleRecord(std::span(img.dat).subspan(tomb_offset), NeedleVersion::kV3);
  ASSERT_TRUE(tomb);
  EXPECT_TRUE(tomb->is_tombstone());
  EXPECT_EQ(tomb->header.id, 0x14u);
  EXPECT_EQ(tomb->header.cookie, 0x3b2e4ea7u);
  // The volume server appends the needle it read, data dropped: the checksum stays.
  EXPECT_EQ(tomb->checksum, Crc32c(data));
  EXPECT_GT(tomb->append_at_ns, 0u);

  // A deleted needle can be written again (a new upload to the same fid).
  ASSERT_TRUE(w->Append(s));
  EXPECT_EQ(w->live_needles(), 1u);
}

TEST(VolumeWriter, OverwriteNeedsTheSameCookieAndEmptyDataIsRefused) {
  testing::TempDir dir;
  auto w = VolumeWriter::Create(Options(dir));
  ASSERT_TRUE(w);
  const std::vector<uint8_t> a = Bytes("first"), b = Bytes("second");
  NeedleSpec s;
  s.id = 5, s.cookie = 1, s.data = a;
  ASSERT_TRUE(w->Append(s));
  s.data = b;
  auto same = w->Append(s);
  ASSERT_TRUE(same);
  s.cookie = 2;
  auto other = w->Append(s);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code(), Code::kInvalidArgument);
  s.data = {};
  EXPECT_EQ(w->Append(s).error().code(), Code::kInvalidArgument);

  const VolumeImage img = Load(w->files(), OffsetWidth::k4);
  ASSERT_EQ(img.live.size(), 1u);
  EXPECT_EQ(img.live.at(5), *same);
  const NeedleRecord r = RecordAt(img, img.live.at(5));
  EXPECT_EQ(std::string(r.data.begin(), r.data.end()), "second");
}

TEST(VolumeWriter, OpenContinuesAnExistingVolume) {
  for (OffsetWidth width : {OffsetWidth::k4, OffsetWidth::k5}) {
    testing::TempDir dir;
    const std::vector<uint8_t> d1 = Bytes("one"), d2 = Bytes("two"), d3 = Bytes("three");
    uint64_t end = 0;
    {
      VolumeWriterOptions o = Options(dir, NeedleVersion::kV2, width);
      o.collection = "c";
      auto w = VolumeWriter::Create(o);
      ASSERT_TRUE(w);
      ASSERT_TRUE(w->Append({.id = 1, .cookie = 10, .data = d1}));
      ASSERT_TRUE(w->Append({.id = 2, .cookie = 20, .data = d2}));
      end = w->dat_size();
    }
    auto found = DiscoverVolumes(dir.path());
    ASSERT_TRUE(found);
    ASSERT_EQ(found->volumes.size(), 1u);
    // The fallback is wrong on purpose for k5: the .vif must win.
    auto w = VolumeWriter::Open(found->volumes[0], OffsetWidth::k4);
    ASSERT_TRUE(w) << w.error().ToString();
    EXPECT_EQ(w->offset_width(), width);
    EXPECT_EQ(w->version(), NeedleVersion::kV2);
    EXPECT_EQ(w->superblock().compaction_revision, 3);
    EXPECT_EQ(w->dat_size(), end);
    EXPECT_EQ(w->live_needles(), 2u);
    auto e3 = w->Append({.id = 3, .cookie = 30, .data = d3});
    ASSERT_TRUE(e3);
    EXPECT_EQ(e3->offset, end);
    ASSERT_TRUE(w->Delete(1, 10).ok());

    const VolumeImage img = Load(w->files(), width);
    EXPECT_EQ(img.entries.size(), 4u);
    ASSERT_EQ(img.live.size(), 2u);
    EXPECT_TRUE(VerifyNeedle(RecordAt(img, img.live.at(2)), {2, 20, std::nullopt}));
    EXPECT_TRUE(VerifyNeedle(RecordAt(img, img.live.at(3)), {3, 30, std::nullopt}));
  }
}

TEST(VolumeWriter, OpenRejectsDamagedVolumes) {
  testing::TempDir dir;
  {
    auto w = VolumeWriter::Create(Options(dir));
    ASSERT_TRUE(w);
    const std::vector<uint8_t> d = Bytes("payload");
    ASSERT_TRUE(w->Append({.id = 1, .cookie = 1, .data = d}));
  }
  VolumeFiles files{7, "", dir / "7.dat", dir / "7.idx", dir / "7.vif"};
  const std::vector<uint8_t> dat = ReadAll(files.dat), idx = ReadAll(files.idx);

  std::vector<uint8_t> garbage = dat;
  garbage[0] = 9;  // no such version
  WriteAll(files.dat, garbage);
  auto bad_sb = VolumeWriter::Open(files);
  ASSERT_FALSE(bad_sb);
  EXPECT_EQ(bad_sb.error().code(), Code::kCorruption);
  EXPECT_NE(bad_sb.error().message().find("7.dat"), std::string::npos);

  WriteAll(files.dat, {});
  EXPECT_EQ(VolumeWriter::Open(files).error().code(), Code::kCorruption);

  WriteAll(files.dat, dat);
  std::vector<uint8_t> tail = idx;
  tail.push_back(0);
  WriteAll(files.idx, tail);
  EXPECT_EQ(VolumeWriter::Open(files).error().code(), Code::kCorruption);

  // The .dat lost the record the .idx points to.
  WriteAll(files.idx, idx);
  WriteAll(files.dat, std::vector<uint8_t>(dat.begin(), dat.begin() + 8));
  EXPECT_EQ(VolumeWriter::Open(files).error().code(), Code::kCorruption);

  WriteAll(files.dat, dat);
  EXPECT_TRUE(VolumeWriter::Open(files));
}

TEST(VolumeWriter, ReaderDetectsDamageAndMismatches) {
  testing::TempDir dir;
  auto w = VolumeWriter::Create(Options(dir));
  ASSERT_TRUE(w);
  const std::vector<uint8_t> d = GeneratedNeedleData(1, 1, 500, false);
  auto e = w->Append({.id = 1, .cookie = 0xabcdef01, .data = d});
  ASSERT_TRUE(e);
  VolumeImage img = Load(w->files(), OffsetWidth::k4);
  ASSERT_TRUE(VerifyNeedle(RecordAt(img, *e), {1, 0xabcdef01, e->size}));

  auto wrong_cookie = VerifyNeedle(RecordAt(img, *e), {1, 0xabcdef02, e->size});
  EXPECT_EQ(wrong_cookie.error().code(), Code::kNotFound);
  auto wrong_id = VerifyNeedle(RecordAt(img, *e), {2, 0xabcdef01, e->size});
  EXPECT_EQ(wrong_id.error().code(), Code::kCorruption);

  // Flip one data byte (DataSize is 4 bytes after the 16-byte header).
  img.dat[e->offset + 16 + 4 + 123] ^= 0x01;
  auto flipped = VerifyNeedle(RecordAt(img, *e), {1, 0xabcdef01, e->size});
  EXPECT_EQ(flipped.error().code(), Code::kChecksumMismatch);

  // A record cut anywhere before its checksum ends does not parse.
  const uint64_t len = NeedleRecordLengthWithoutPadding(e->size, NeedleVersion::kV3);
  for (uint64_t cut : {uint64_t{0}, uint64_t{10}, uint64_t{16}, len / 2, len - 1}) {
    auto rec = ParseNeedleRecord(std::span(img.dat).subspan(e->offset, cut), NeedleVersion::kV3);
    ASSERT_FALSE(rec) << cut;
    EXPECT_EQ(rec.error().code(), Code::kCorruption);
  }
  EXPECT_FALSE(ParseSuperBlock(std::vector<uint8_t>{0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0}));
}

// Everything a generated volume must satisfy: each recorded needle reads back from the .dat,
// verifies, and its data (gunzipped when flagged) equals GeneratedNeedleData.
void CheckGenerated(const GenerateOptions& o, const GenerateReport& r) {
  VolumeFiles files{o.volume_id, o.collection, r.dat, r.idx, std::nullopt};
  const VolumeImage img = Load(files, o.offset_width);
  EXPECT_EQ(img.sb.version, o.version);
  EXPECT_EQ(img.dat.size(), r.dat_size);
  EXPECT_EQ(img.entries.size(), r.written + r.deleted);
  EXPECT_EQ(img.live.size(), r.written - r.deleted);
  ASSERT_EQ(r.needles.size(), r.written);
  uint64_t gz = 0, del = 0;
  for (const GeneratedNeedle& n : r.needles) {
    EXPECT_EQ(n.fid.volume_id, o.volume_id);
    EXPECT_GE(n.size, o.min_size);
    EXPECT_LE(n.size, o.max_size);
    gz += n.gzipped;
    del += n.deleted;
    EXPECT_EQ(img.live.contains(n.fid.needle_id), !n.deleted);
    // Deleted needles keep their bytes in the .dat: check those too.
    auto rec = ParseNeedleRecord(std::span(img.dat).subspan(n.offset), o.version);
    ASSERT_TRUE(rec) << rec.error().ToString();
    auto form = VerifyNeedle(*rec, {n.fid.needle_id, n.fid.cookie, std::nullopt});
    ASSERT_TRUE(form) << form.error().ToString();
    EXPECT_EQ(*form, o.legacy_crc ? CrcForm::kLegacy : CrcForm::kRaw);
    EXPECT_EQ(rec->is_gzipped(), n.gzipped);
    EXPECT_EQ(rec->data.size(), n.stored_size);
    const std::vector<uint8_t> want =
        GeneratedNeedleData(o.seed, n.fid.needle_id, n.size, n.gzipped);
    if (n.gzipped) {
      auto plain = Gunzip(rec->data);
      ASSERT_TRUE(plain);
      EXPECT_EQ(*plain, want);
      EXPECT_EQ(rec->mime, "text/plain");
    } else {
      EXPECT_TRUE(std::equal(rec->data.begin(), rec->data.end(), want.begin(), want.end()));
    }
  }
  EXPECT_EQ(gz, r.gzipped);
  EXPECT_EQ(del, r.deleted);
  // Every tombstone entry points at a size-0 record of the same needle.
  for (const IdxEntry& e : img.entries) {
    if (!e.is_deletion()) continue;
    auto tomb = ParseNeedleRecord(std::span(img.dat).subspan(e.offset), o.version);
    ASSERT_TRUE(tomb);
    EXPECT_TRUE(tomb->is_tombstone());
    EXPECT_EQ(tomb->header.id, e.needle_id);
  }
}

TEST(VolumeGenerator, VolumesOfEveryKindReadBack) {
  struct Case {
    NeedleVersion version;
    double gzip, del;
    bool legacy;
    OffsetWidth width;
  };
  for (const Case& c : {Case{NeedleVersion::kV3, 0, 0, false, OffsetWidth::k4},
                        Case{NeedleVersion::kV2, 0.5, 0.2, false, OffsetWidth::k4},
                        Case{NeedleVersion::kV3, 0.3, 0.3, true, OffsetWidth::k5},
                        Case{NeedleVersion::kV2, 1.0, 1.0, true, OffsetWidth::k5}}) {
    testing::TempDir dir;
    GenerateOptions o;
    o.dir = dir.path();
    o.volume_id = 42;
    o.collection = "bench_set";
    o.needles = 300;
    o.min_size = 1;
    o.max_size = 20'000;
    o.version = c.version;
    o.gzip_fraction = c.gzip;
    o.delete_fraction = c.del;
    o.legacy_crc = c.legacy;
    o.offset_width = c.width;
    o.seed = 99;
    uint64_t calls = 0;
    auto r = GenerateVolume(o, [&](const GenerateProgress& p) {
      ++calls;
      EXPECT_EQ(p.total, 300u);
    });
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->written, 300u);
    EXPECT_EQ(calls, r->written + r->deleted);
    EXPECT_EQ(r->dat, dir / "bench_set_42.dat");
    if (c.gzip == 0) {
      EXPECT_EQ(r->gzipped, 0u);
    }
    if (c.gzip == 1) {
      EXPECT_EQ(r->gzipped, 300u);
    }
    if (c.del == 1) {
      EXPECT_EQ(r->deleted, 300u);
    }
    if (c.gzip > 0 && c.gzip < 1) {
      EXPECT_GT(r->gzipped, 0u);
      EXPECT_LT(r->gzipped, 300u);
    }
    if (c.gzip == 1) {  // text compresses
      EXPECT_LT(r->stored_bytes, r->data_bytes);
    }
    CheckGenerated(o, *r);
  }
}

TEST(VolumeGenerator, SameOptionsGiveTheSameNeedles) {
  testing::TempDir a, b;
  GenerateOptions o;
  o.needles = 50;
  o.min_size = 10;
  o.max_size = 5000;
  o.gzip_fraction = 0.5;
  o.delete_fraction = 0.5;
  o.seed = 7;
  o.dir = a.path();
  auto ra = GenerateVolume(o, {});
  o.dir = b.path();
  auto rb = GenerateVolume(o, {});
  ASSERT_TRUE(ra && rb);
  ASSERT_EQ(ra->needles.size(), rb->needles.size());
  for (size_t i = 0; i < ra->needles.size(); ++i) {
    EXPECT_EQ(ra->needles[i].fid, rb->needles[i].fid);
    EXPECT_EQ(ra->needles[i].size, rb->needles[i].size);
    EXPECT_EQ(ra->needles[i].gzipped, rb->needles[i].gzipped);
    EXPECT_EQ(ra->needles[i].deleted, rb->needles[i].deleted);
  }
  // Different seeds give different content; data is a pure function of (seed, id, size).
  EXPECT_NE(GeneratedNeedleData(1, 5, 64, false), GeneratedNeedleData(2, 5, 64, false));
  EXPECT_EQ(GeneratedNeedleData(1, 5, 64, true), GeneratedNeedleData(1, 5, 64, true));
  const std::vector<uint8_t> longer = GeneratedNeedleData(1, 5, 100, false);
  EXPECT_TRUE(std::equal(longer.begin(), longer.begin() + 64,
                         GeneratedNeedleData(1, 5, 64, false).begin()));
}

TEST(VolumeGenerator, RejectsBadOptions) {
  testing::TempDir dir;
  GenerateOptions o;
  o.dir = dir.path();
  o.needles = 1;
  o.min_size = 0;
  EXPECT_EQ(GenerateVolume(o, {}).error().code(), Code::kInvalidArgument);
  o.min_size = 10, o.max_size = 5;
  EXPECT_EQ(GenerateVolume(o, {}).error().code(), Code::kInvalidArgument);
  o.max_size = 10, o.gzip_fraction = 1.5;
  EXPECT_EQ(GenerateVolume(o, {}).error().code(), Code::kInvalidArgument);
  o.gzip_fraction = 0, o.version = NeedleVersion::kV1;
  EXPECT_EQ(GenerateVolume(o, {}).error().code(), Code::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir / "1.dat"));
}

}  // namespace
}  // namespace swrdma
