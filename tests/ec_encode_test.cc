// EncodeEcVolume and the Reed-Solomon codec: known answers from klauspost/reedsolomon and from
// weed's own encoder, every needle read back through the .ecx and LocateData, and lost shards
// rebuilt from parity.
#include <bit>
#include <fstream>
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "protocol/crc32c.h"
#include "protocol/needle.h"
#include "tests/test_util.h"
#include "volume/ec_codec.h"
#include "volume/ec_volume.h"
#include "volume/volume_generator.h"
#include "volume/volume_writer.h"

namespace swrdma::ec {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// Known answers produced once with klauspost/reedsolomon v1.14.1 (the version SeaweedFS's go.mod
// names): `enc, _ := reedsolomon.New(data, parity)`, data shard i byte j = byte(i*31 + j*7 + 1),
// `enc.Encode(shards)`; parity printed, or its CRC-32C (hash/crc32 Castagnoli) for long shards.
std::vector<std::vector<uint8_t>> KnownAnswerData(uint32_t data, size_t len) {
  std::vector<std::vector<uint8_t>> shards(data, std::vector<uint8_t>(len));
  for (uint32_t i = 0; i < data; ++i) {
    for (size_t j = 0; j < len; ++j)
      shards[i][j] = static_cast<uint8_t>(i * 31 + j * 7 + 1);
  }
  return shards;
}

std::vector<std::vector<uint8_t>> Parity(const ReedSolomonCodec& codec,
                                         const std::vector<std::vector<uint8_t>>& data) {
  const size_t len = data[0].size();
  std::vector<std::vector<uint8_t>> parity(codec.parity_shards(), std::vector<uint8_t>(len));
  std::vector<const uint8_t*> in;
  std::vector<uint8_t*> out;
  for (const auto& d : data)
    in.push_back(d.data());
  for (auto& p : parity)
    out.push_back(p.data());
  codec.EncodeParity(len, in, out);
  return parity;
}

TEST(ReedSolomon, MatchesKlauspostKnownAnswers) {
  auto rs10 = ReedSolomonCodec::Create(10, 4);
  ASSERT_TRUE(rs10) << rs10.error().ToString();
  EXPECT_EQ(Parity(*rs10, KnownAnswerData(10, 16)),
            (std::vector<std::vector<uint8_t>>{{0x0b, 0x17, 0x45, 0x24, 0xe3, 0x2a, 0x0e, 0xbc,
                                                0xa0, 0xf2, 0x7d, 0xca, 0x46, 0x11, 0x0a, 0x3b},
                                               {0x8c, 0xb4, 0x64, 0xce, 0xc2, 0x71, 0xef, 0x8e,
                                                0x41, 0xbf, 0x1c, 0x5d, 0x67, 0x82, 0x64, 0xe4},
                                               {0x8c, 0x3b, 0x83, 0x2a, 0xf6, 0x8e, 0x57, 0x70,
                                                0x22, 0x86, 0xa6, 0xdd, 0x60, 0x26, 0xa5, 0x88},
                                               {0x8c, 0x4b, 0xa2, 0xa0, 0xd7, 0xc7, 0x36, 0xba,
                                                0x43, 0xa6, 0xc7, 0x99, 0x41, 0x6e, 0x7a, 0x0c}}));
  auto rs6 = ReedSolomonCodec::Create(6, 3);
  ASSERT_TRUE(rs6);
  EXPECT_EQ(Parity(*rs6, KnownAnswerData(6, 8)),
            (std::vector<std::vector<uint8_t>>{{0xc3, 0xea, 0xc9, 0xc0, 0xdf, 0x3c, 0xdf, 0xa6},
                                               {0x62, 0xc1, 0xe8, 0xe7, 0xfe, 0xa7, 0x3e, 0x59},
                                               {0xfc, 0x00, 0x1a, 0xf8, 0xb5, 0xba, 0x98, 0x69}}));
  // Long shards take ISA-L's vector paths.
  const auto parity = Parity(*rs10, KnownAnswerData(10, 100000));
  const uint32_t expected[] = {0xc3314c62, 0x7604a76d, 0x090aff2e, 0xbff79ad9};
  for (size_t p = 0; p < 4; ++p)
    EXPECT_EQ(Crc32c(parity[p]), expected[p]) << "parity shard " << 10 + p;
}

TEST(ReedSolomon, RejectsBadRatios) {
  EXPECT_FALSE(ReedSolomonCodec::Create(0, 4));
  EXPECT_FALSE(ReedSolomonCodec::Create(10, 0));
  EXPECT_FALSE(ReedSolomonCodec::Create(200, 57));
}

// Every way of losing up to `parity` shards of a 10+4 (and 6+3) stripe is repaired exactly.
TEST(ReedSolomon, ReconstructsAnyLostSubset) {
  for (auto [data, parity] : {std::pair{10u, 4u}, std::pair{6u, 3u}}) {
    auto codec = ReedSolomonCodec::Create(data, parity);
    ASSERT_TRUE(codec);
    const uint32_t total = data + parity;
    const size_t len = 67;  // odd: ISA-L's tail handling
    std::mt19937 rng(data);
    std::vector<std::vector<uint8_t>> original(total, std::vector<uint8_t>(len));
    for (uint32_t i = 0; i < data; ++i) {
      for (uint8_t& b : original[i])
        b = static_cast<uint8_t>(rng());
    }
    const auto p = Parity(*codec, {original.begin(), original.begin() + data});
    std::copy(p.begin(), p.end(), original.begin() + data);
    int subsets = 0;
    for (uint32_t mask = 0; mask < (1u << total); ++mask) {
      if (std::popcount(mask) > static_cast<int>(parity)) continue;
      std::vector<std::vector<uint8_t>> work = original;
      std::vector<uint8_t*> ptrs;
      bool present[32];
      for (uint32_t i = 0; i < total; ++i) {
        present[i] = !(mask & (1u << i));
        if (!present[i]) std::fill(work[i].begin(), work[i].end(), uint8_t{0xEE});
        ptrs.push_back(work[i].data());
      }
      std::vector<std::vector<uint8_t>> data_only = work;
      std::vector<uint8_t*> data_ptrs;
      for (auto& shard : data_only)
        data_ptrs.push_back(shard.data());
      ASSERT_TRUE(codec->Reconstruct(len, ptrs, std::span(present, total)).ok());
      ASSERT_EQ(work, original) << "lost mask " << std::hex << mask;
      // Data only: the data shards as Reconstruct's, lost parity left untouched.
      ASSERT_TRUE(codec->ReconstructData(len, data_ptrs, std::span(present, total)).ok());
      for (uint32_t i = 0; i < total; ++i) {
        ASSERT_EQ(data_only[i],
                  i < data || present[i] ? original[i] : std::vector<uint8_t>(len, 0xEE))
            << "shard " << i << ", lost mask " << std::hex << mask;
      }
      ++subsets;
    }
    EXPECT_EQ(subsets,
              data == 10 ? 1 + 14 + 91 + 364 + 1001 : 1 + 9 + 36 + 84);  // C(total, <= parity)
    // One loss too many cannot be repaired.
    std::vector<uint8_t*> ptrs(total, original[0].data());
    bool present[32] = {};
    for (uint32_t i = parity + 1; i < total; ++i)
      present[i] = true;
    EXPECT_EQ(codec->Reconstruct(len, ptrs, std::span(present, total)).code(),
              Code::kInvalidArgument);
  }
}

struct Encoded {
  std::vector<std::vector<uint8_t>> shards;
  std::vector<uint8_t> ecx;
  EcVolumeInfo info;
};

Encoded EncodeInto(const fs::path& dat, const fs::path& idx, const fs::path& out,
                   const EcEncodeOptions& o) {
  Encoded e;
  const Status st = EncodeEcVolume(dat, idx, out, "1", o);
  EXPECT_TRUE(st.ok()) << st.ToString();
  for (uint32_t i = 0; i < o.data_shards + o.parity_shards; ++i)
    e.shards.push_back(ReadAll(out / ("1" + ShardExtension(i))));
  e.ecx = ReadAll(out / "1.ecx");
  EXPECT_TRUE(fs::exists(out / "1.ecj"));
  EXPECT_EQ(fs::file_size(out / "1.ecj"), 0u);
  std::ifstream vif(out / "1.vif");
  const std::string text{std::istreambuf_iterator<char>(vif), {}};
  auto info = ParseEcVolumeInfo(text, OffsetWidth::k4);
  EXPECT_TRUE(info) << text;
  if (info) e.info = *info;
  return e;
}

// CRC-32C of the files weed's own encoder wrote for a copy of ec_1.dat/ec_1.idx named
// 1.dat/1.idx (weed module v0.0.0-20261109003541-7506e5f91cd6, klauspost/reedsolomon v1.14.2):
// with weed's block sizes through erasure_coding.WriteEcFiles(base, &ECContext{DataShards: d,
// ParityShards: p}) and WriteSortedFileFromIdx (one small row: 1 MiB shards); with small blocks
// through its unexported generateEcFiles(base, bufferSize, large, small, ctx) (reached with
// go:linkname, buffer 50 and 256), the call weed's ec_test.go makes, so large rows, the
// large-to-small switch and a padded last small row are all covered.
struct WeedEncoding {
  EcEncodeOptions options;
  uint64_t shard_size;
  std::vector<uint32_t> crcs;
};
constexpr uint32_t kZeroMiB = 0x14298c12;  // an all-zero 1 MiB shard (no data reached it)
const std::vector<WeedEncoding> kWeedEncodings = {
    {{.data_shards = 10, .parity_shards = 4},
     kSmallBlockSize,
     {0x011fc266, 0x52dbe119, 0x4ee5ad9d, kZeroMiB, kZeroMiB, kZeroMiB, kZeroMiB, kZeroMiB,
      kZeroMiB, kZeroMiB, 0x397ceb34, 0xc177a580, 0x5b78ff7c, 0x0245f0c7}},
    {{.data_shards = 6, .parity_shards = 3},
     kSmallBlockSize,
     {0x011fc266, 0x52dbe119, 0x4ee5ad9d, kZeroMiB, kZeroMiB, kZeroMiB, 0x585475f5, 0x515c7705,
      0x874a3de6}},
    {{.data_shards = 10,
      .parity_shards = 4,
      .large_block = 10000,
      .small_block = 100,
      .uniform = false},
     259100,  // 25 large rows, 91 small rows
     {0x5423d1dc, 0x34c47710, 0x5578c022, 0x527cfea4, 0xcbad2fe0, 0xe15dca6b, 0x44eea5e6,
      0xb9e665e8, 0x425487a0, 0xfccb9f29, 0xec1b7ec5, 0xc02680d8, 0x0441f7e6, 0x5eefeaa7}},
    {{.data_shards = 6,
      .parity_shards = 3,
      .large_block = 4096,
      .small_block = 512,
      .uniform = false},
     432128,  // 105 large rows, 4 small rows
     {0x1b3575b3, 0x8af8825b, 0x599d1742, 0x84f91ba3, 0x096532c0, 0x23ca10c2, 0xc51049e4,
      0xa31690ef, 0x7fa8d1dc}},
};
constexpr uint32_t kWeedEcxCrc = 0x0bcb35d1;

TEST(EcEncode, FixtureMatchesWeedsEncoderByteForByte) {
  SWRDMA_REQUIRE_FIXTURES(fixtures);
  for (const WeedEncoding& w : kWeedEncodings) {
    const EcEncodeOptions& o = w.options;
    SCOPED_TRACE(::testing::Message() << o.data_shards << "+" << o.parity_shards << " blocks "
                                      << o.large_block << "/" << o.small_block);
    testing::TempDir out("ec-encode-weed");
    const Encoded e = EncodeInto(fixtures / "ec_1.dat", fixtures / "ec_1.idx", out.path(), o);
    ASSERT_EQ(e.shards.size(), w.crcs.size());
    for (size_t i = 0; i < w.crcs.size(); ++i) {
      EXPECT_EQ(e.shards[i].size(), w.shard_size) << "shard " << i;
      EXPECT_EQ(Crc32c(e.shards[i]), w.crcs[i]) << "shard " << i;
    }
    EXPECT_EQ(Crc32c(e.ecx), kWeedEcxCrc);
    EXPECT_EQ(e.info.version, 3);
    EXPECT_EQ(e.info.dat_file_size, fs::file_size(fixtures / "ec_1.dat"));
    EXPECT_EQ(e.info.data_shards, o.data_shards);
    EXPECT_EQ(e.info.parity_shards, o.parity_shards);
  }
}

// Reads .dat bytes [offset, offset + size) back out of the shards.
std::vector<uint8_t> ReadThroughShards(const Encoded& e, const Layout& layout, uint64_t offset,
                                       uint64_t size) {
  std::vector<uint8_t> out;
  for (const ShardInterval& s : LocateData(layout, offset, size)) {
    const auto& shard = e.shards.at(s.shard);
    if (s.shard_offset + s.size > shard.size()) {
      ADD_FAILURE() << "interval past the end of shard " << s.shard;
      return {};
    }
    out.insert(out.end(), shard.begin() + s.shard_offset, shard.begin() + s.shard_offset + s.size);
  }
  return out;
}

// The .idx replayed the plain way: a later entry wins, a deletion removes.
std::map<uint64_t, IdxEntry> LiveNeedles(const std::vector<uint8_t>& idx, OffsetWidth w) {
  std::map<uint64_t, IdxEntry> live;
  ScanIdx(idx, w, [&](const IdxEntry& e) {
    if (e.is_deletion()) {
      live.erase(e.needle_id);
    } else {
      live[e.needle_id] = e;
    }
  });
  return live;
}

// Everything a reader of the EC volume relies on, for one encoding of `dat`/`idx`.
void CheckRoundTrip(const fs::path& dat_path, const fs::path& idx_path, const EcEncodeOptions& o,
                    NeedleVersion version) {
  SCOPED_TRACE(::testing::Message() << o.data_shards << "+" << o.parity_shards << " blocks "
                                    << o.large_block << "/" << o.small_block);
  testing::TempDir out("ec-roundtrip");
  const Encoded e = EncodeInto(dat_path, idx_path, out.path(), o);
  const std::vector<uint8_t> dat = ReadAll(dat_path);
  ASSERT_EQ(e.info.dat_file_size, dat.size());
  ASSERT_EQ(e.info.data_shards, o.data_shards);
  ASSERT_EQ(e.info.offset_width, o.offset_width);

  // Shard sizes: the large rows, then the small rows (the last one padded).
  const uint64_t large_rows = dat.size() / (o.large_block * o.data_shards);
  const uint64_t rest = dat.size() - large_rows * o.large_block * o.data_shards;
  const uint64_t small_rows =
      (rest + o.small_block * o.data_shards - 1) / (o.small_block * o.data_shards);
  for (const auto& shard : e.shards)
    ASSERT_EQ(shard.size(), large_rows * o.large_block + small_rows * o.small_block);

  // The whole .dat comes back through LocateData, with the .vif's datFileSize and with weed's
  // fallback for old .vif files (a shard's size minus 1).
  const Layout layout{.large_block = o.large_block,
                      .small_block = o.small_block,
                      .data_shards = o.data_shards,
                      .shard_dat_size = e.info.dat_file_size / o.data_shards};
  Layout fallback = layout;
  fallback.shard_dat_size = e.shards[0].size() - 1;
  ASSERT_EQ(ReadThroughShards(e, layout, 0, dat.size()), dat);
  ASSERT_EQ(ReadThroughShards(e, fallback, 0, dat.size()), dat);

  // Every live needle: found in the .ecx, its record read from the shards equals the .dat's.
  const auto live = LiveNeedles(ReadAll(idx_path), o.offset_width);
  ASSERT_EQ(e.ecx.size(), live.size() * IdxEntrySize(o.offset_width));
  ASSERT_FALSE(live.empty());
  for (const auto& [id, entry] : live) {
    const auto found = FindInSortedIndex(e.ecx, o.offset_width, id);
    ASSERT_TRUE(found) << "needle " << id;
    ASSERT_EQ(*found, entry);
    const uint64_t length = NeedleRecordLength(found->size, version);
    ASSERT_LE(found->offset + length, dat.size());
    const std::vector<uint8_t> expected(dat.begin() + found->offset,
                                        dat.begin() + found->offset + length);
    ASSERT_EQ(ReadThroughShards(e, layout, found->offset, length), expected) << "needle " << id;
  }

  // Lose as many shards as there is parity (data shards first, the worst case) and rebuild.
  auto codec = ReedSolomonCodec::Create(o.data_shards, o.parity_shards);
  ASSERT_TRUE(codec);
  std::vector<std::vector<uint8_t>> work = e.shards;
  std::vector<uint8_t*> ptrs;
  bool present[kMaxShards];
  for (uint32_t i = 0; i < work.size(); ++i) {
    present[i] = i % 3 != 0 || i / 3 >= o.parity_shards;  // 0, 3, 6, ... lost
    if (!present[i]) std::fill(work[i].begin(), work[i].end(), uint8_t{0});
    ptrs.push_back(work[i].data());
  }
  ASSERT_TRUE(codec->Reconstruct(work[0].size(), ptrs, std::span(present, work.size())).ok());
  EXPECT_EQ(work, e.shards);
}

// weed's uniform layout (its encoder since late 2026, found by the real-SeaweedFS EC phase): one
// block of UniformBlockSize per shard, so shard i is simply .dat[i*B, (i+1)*B), zero-padded, and
// the .vif says blockSize. Over 10 MiB this differs from the two-tier layout.
TEST(EcEncode, UniformLayoutIsOneBlockPerShardAsWeedWritesIt) {
  testing::TempDir src("ec-uniform-src");
  GenerateOptions g;
  g.dir = src.path();
  g.volume_id = 21;
  g.needles = 40;
  g.min_size = 300 * 1024;
  g.max_size = 700 * 1024;
  g.seed = 5;
  auto gen = GenerateVolume(g, {});
  ASSERT_TRUE(gen) << gen.error().ToString();
  const std::vector<uint8_t> dat = ReadAll(gen->dat);
  ASSERT_GT(dat.size(), uint64_t{10} << 20);
  const uint64_t b = UniformBlockSize(dat.size(), 10);
  EXPECT_EQ(b % kSmallBlockSize, 0u);
  EXPECT_GE(b * 10, dat.size());
  EXPECT_LT(b * 10, dat.size() + 10 * kSmallBlockSize);
  testing::TempDir out("ec-uniform");
  const Encoded e = EncodeInto(gen->dat, gen->idx, out.path(), {});
  EXPECT_EQ(e.info.block_size, b);
  for (uint32_t i = 0; i < 10; ++i) {
    ASSERT_EQ(e.shards[i].size(), b) << "shard " << i;
    std::vector<uint8_t> want(b, 0);
    if (i * b < dat.size()) {
      const uint64_t n = std::min<uint64_t>(b, dat.size() - i * b);
      std::copy_n(dat.begin() + static_cast<std::ptrdiff_t>(i * b), n, want.begin());
    }
    EXPECT_EQ(e.shards[i], want) << "shard " << i;
  }
  const Layout layout = LayoutOf(e.info, 0);
  EXPECT_EQ(layout.large_block, b);
  EXPECT_EQ(layout.small_block, b);
  ASSERT_EQ(ReadThroughShards(e, layout, 0, dat.size()), dat);
  // The legacy layout would place the second MiB on shard 1: not where the bytes are.
  Layout legacy = layout;
  legacy.large_block = kLargeBlockSize;
  legacy.small_block = kSmallBlockSize;
  EXPECT_NE(ReadThroughShards(e, legacy, 0, dat.size()), dat);
}

TEST(EcEncode, FixtureRoundTripAcrossEveryBoundary) {
  SWRDMA_REQUIRE_FIXTURES(fixtures);
  const fs::path dat = fixtures / "ec_1.dat", idx = fixtures / "ec_1.idx";
  // 2.5 MB: 25 large rows of 10 x 10000, then 91 small rows of 10 x 100 (the last padded).
  CheckRoundTrip(dat, idx, {.large_block = 10000, .small_block = 100, .uniform = false},
                 NeedleVersion::kV3);
  CheckRoundTrip(dat, idx,
                 {.data_shards = 6,
                  .parity_shards = 3,
                  .large_block = 4096,
                  .small_block = 512,
                  .uniform = false},
                 NeedleVersion::kV3);
  CheckRoundTrip(dat, idx, {}, NeedleVersion::kV3);  // weed's sizes: one small row
}

// A volume with overwrites and deletions, 5-byte offsets: the .ecx holds exactly the live needles
// with their latest records.
TEST(EcEncode, GeneratedVolumeWithDeletionsAndOverwrites) {
  testing::TempDir dir("ec-generated");
  VolumeFiles files;
  uint64_t live = 0;
  {
    auto writer = VolumeWriter::Create(
        {.dir = dir.path(), .volume_id = 1, .offset_width = OffsetWidth::k5, .write_vif = false});
    ASSERT_TRUE(writer) << writer.error().ToString();
    std::mt19937 rng(3);
    for (uint64_t id = 1; id <= 200; ++id) {
      std::vector<uint8_t> data(1 + rng() % 3000);
      for (uint8_t& b : data)
        b = static_cast<uint8_t>(rng());
      ASSERT_TRUE(writer->Append({.id = id, .cookie = 7, .data = data}));
      if (id % 7 == 0) {
        ASSERT_TRUE(writer->Append({.id = id / 2, .cookie = 7, .data = data}));
      }
      if (id % 11 == 0) {
        ASSERT_TRUE(writer->Delete(id - 3, 7).ok());
      }
    }
    ASSERT_TRUE(writer->Delete(200, 7).ok());  // the highest id is gone too
    files = writer->files();
    live = writer->live_needles();
  }  // closes the volume

  const EcEncodeOptions o{
      .large_block = 2000, .small_block = 64, .uniform = false, .offset_width = OffsetWidth::k5};
  CheckRoundTrip(files.dat, files.idx, o, NeedleVersion::kV3);

  testing::TempDir out("ec-generated-out");
  const Encoded e = EncodeInto(files.dat, files.idx, out.path(), o);
  EXPECT_EQ(e.ecx.size(), live * IdxEntrySize(OffsetWidth::k5));
  EXPECT_FALSE(FindInSortedIndex(e.ecx, OffsetWidth::k5, 200));  // deleted: absent, not tombstoned
  EXPECT_FALSE(FindInSortedIndex(e.ecx, OffsetWidth::k5, 8));    // 11 - 3
  EXPECT_TRUE(FindInSortedIndex(e.ecx, OffsetWidth::k5, 199));
}

TEST(EcEncode, FailuresLeaveNoHalfSet) {
  testing::TempDir out("ec-fail");
  const Status missing = EncodeEcVolume(out / "nope.dat", out / "nope.idx", out.path(), "9", {});
  EXPECT_EQ(missing.code(), Code::kIOError) << missing.ToString();
  EXPECT_TRUE(fs::is_empty(out.path()));

  std::ofstream(out / "bad.dat") << "xx";  // no superblock
  std::ofstream(out / "bad.idx");
  const Status bad = EncodeEcVolume(out / "bad.dat", out / "bad.idx", out.path(), "9", {});
  EXPECT_EQ(bad.code(), Code::kCorruption) << bad.ToString();
  EXPECT_FALSE(fs::exists(out / "9.ecx"));
  EXPECT_FALSE(fs::exists(out / "9.ec00"));

  for (const EcEncodeOptions& o :
       {EcEncodeOptions{.data_shards = 0}, EcEncodeOptions{.parity_shards = 0},
        EcEncodeOptions{.data_shards = 30, .parity_shards = 3},
        EcEncodeOptions{.small_block = 0}}) {
    EXPECT_EQ(EncodeEcVolume(out / "bad.dat", out / "bad.idx", out.path(), "9", o).code(),
              Code::kInvalidArgument);
  }
}

}  // namespace
}  // namespace swrdma::ec
