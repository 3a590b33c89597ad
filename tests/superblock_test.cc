#include "volume/superblock.h"

#include <vector>

#include <gtest/gtest.h>

namespace swrdma {
namespace {

TEST(SuperBlock, RoundTripsWithoutExtra) {
  SuperBlock sb;
  sb.version = NeedleVersion::kV3;
  sb.replica_placement = 2;
  sb.ttl_count = 5;
  sb.ttl_unit = 3;
  sb.compaction_revision = 0x0102;
  const std::vector<uint8_t> bytes = EncodeSuperBlock(sb);
  EXPECT_EQ(bytes, (std::vector<uint8_t>{3, 2, 5, 3, 0x01, 0x02, 0, 0}));
  auto parsed = ParseSuperBlock(bytes);
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_EQ(parsed->version, NeedleVersion::kV3);
  EXPECT_EQ(parsed->replica_placement, 2);
  EXPECT_EQ(parsed->replica_placement_string(), "002");
  EXPECT_EQ(parsed->ttl_count, 5);
  EXPECT_EQ(parsed->ttl_unit, 3);
  EXPECT_EQ(parsed->compaction_revision, 0x0102);
  EXPECT_TRUE(parsed->extra.empty());
  EXPECT_EQ(parsed->data_start(), 8u);
}

TEST(SuperBlock, ExtraMovesTheFirstNeedle) {
  SuperBlock sb;
  sb.version = NeedleVersion::kV2;
  sb.extra = {0x0a, 0x03, 'a', 'b', 'c'};
  const std::vector<uint8_t> bytes = EncodeSuperBlock(sb);
  ASSERT_EQ(bytes.size(), 13u);
  EXPECT_EQ(bytes[6], 0);
  EXPECT_EQ(bytes[7], 5);
  auto parsed = ParseSuperBlock(bytes);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->extra, sb.extra);
  EXPECT_EQ(parsed->data_start(), 13u);
}

TEST(SuperBlock, ParsesFromTheHeadOfALongerFile) {
  std::vector<uint8_t> file = {3, 0, 0, 0, 0, 7, 0, 0, 0xaa, 0xbb, 0xcc};
  auto parsed = ParseSuperBlock(file);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->compaction_revision, 7);
  EXPECT_EQ(parsed->data_start(), 8u);
}

TEST(SuperBlock, VersionOneIgnoresTheExtraSizeBytes) {
  // Version 1 superblocks have no extra; SeaweedFS does not read bytes 6..7 for them.
  std::vector<uint8_t> file = {1, 0, 0, 0, 0, 0, 0xff, 0xff};
  auto parsed = ParseSuperBlock(file);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->version, NeedleVersion::kV1);
  EXPECT_EQ(parsed->data_start(), 8u);
}

TEST(SuperBlock, RejectsShortUnknownVersionAndTruncatedExtra) {
  EXPECT_EQ(ParseSuperBlock(std::vector<uint8_t>{3, 0, 0}).error().code(), Code::kCorruption);
  EXPECT_EQ(ParseSuperBlock(std::vector<uint8_t>{}).error().code(), Code::kCorruption);
  EXPECT_EQ(ParseSuperBlock(std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0}).error().code(),
            Code::kCorruption);
  EXPECT_EQ(ParseSuperBlock(std::vector<uint8_t>{4, 0, 0, 0, 0, 0, 0, 0}).error().code(),
            Code::kCorruption);
  auto truncated = ParseSuperBlock(std::vector<uint8_t>{3, 0, 0, 0, 0, 0, 0, 9, 1, 2});
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().code(), Code::kCorruption);
  EXPECT_NE(truncated.error().message().find("extra"), std::string::npos);
}

TEST(SuperBlock, ReplicaPlacementString) {
  SuperBlock sb;
  sb.replica_placement = 110;
  EXPECT_EQ(sb.replica_placement_string(), "110");
  sb.replica_placement = 0;
  EXPECT_EQ(sb.replica_placement_string(), "000");
}

}  // namespace
}  // namespace swrdma
