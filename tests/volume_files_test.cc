#include "volume/volume_files.h"

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace swrdma {
namespace {

void Touch(const std::filesystem::path& p, const std::string& content = "") {
  std::ofstream(p, std::ios::binary) << content;
}

TEST(VolumeFiles, ParsesBaseNames) {
  EXPECT_EQ(ParseVolumeBaseName("7"), std::make_pair(std::string(), uint32_t{7}));
  EXPECT_EQ(ParseVolumeBaseName("pics_7"), std::make_pair(std::string("pics"), uint32_t{7}));
  // Collections may contain underscores: the id is the digits after the last one.
  EXPECT_EQ(ParseVolumeBaseName("my_pics_2024_12"),
            std::make_pair(std::string("my_pics_2024"), uint32_t{12}));
  EXPECT_EQ(ParseVolumeBaseName("4294967295"),
            std::make_pair(std::string(), uint32_t{4294967295u}));
  EXPECT_FALSE(ParseVolumeBaseName("4294967296"));  // beyond u32
  EXPECT_FALSE(ParseVolumeBaseName("healthy_volume"));
  EXPECT_FALSE(ParseVolumeBaseName("pics_"));
  EXPECT_FALSE(ParseVolumeBaseName("_7"));
  EXPECT_FALSE(ParseVolumeBaseName("7a"));
  EXPECT_FALSE(ParseVolumeBaseName(""));
  EXPECT_FALSE(ParseVolumeBaseName("-7"));
}

TEST(VolumeFiles, BaseNameRoundTrips) {
  VolumeFiles v;
  v.volume_id = 9;
  EXPECT_EQ(v.base_name(), "9");
  v.collection = "a_b";
  EXPECT_EQ(v.base_name(), "a_b_9");
  EXPECT_EQ(ParseVolumeBaseName(v.base_name()), std::make_pair(std::string("a_b"), uint32_t{9}));
}

TEST(VolumeFiles, DiscoversVolumesWithCollectionsAndWarnsAboutTheRest) {
  testing::TempDir dir;
  Touch(dir / "3.dat");
  Touch(dir / "3.idx");
  Touch(dir / "pics_2024_12.dat");
  Touch(dir / "pics_2024_12.idx");
  Touch(dir / "pics_2024_12.vif", "{}");
  Touch(dir / "5.dat");  // no .idx: still being created
  Touch(dir / "healthy_volume.dat");
  Touch(dir / "healthy_volume.idx");
  Touch(dir / "other_3.dat");  // volume id 3 again
  Touch(dir / "other_3.idx");
  Touch(dir / "8.idx");  // .idx alone is not a volume
  Touch(dir / "notes.txt");
  std::filesystem::create_directory(dir / "9.dat");  // a directory is not a volume

  auto report = DiscoverVolumes(dir.path());
  ASSERT_TRUE(report) << report.error().ToString();
  ASSERT_EQ(report->volumes.size(), 2u);
  const VolumeFiles& v3 = report->volumes[0];
  EXPECT_EQ(v3.volume_id, 3u);
  EXPECT_EQ(v3.collection, "");
  EXPECT_EQ(v3.dat, dir / "3.dat");
  EXPECT_EQ(v3.idx, dir / "3.idx");
  EXPECT_FALSE(v3.vif);
  const VolumeFiles& v12 = report->volumes[1];
  EXPECT_EQ(v12.volume_id, 12u);
  EXPECT_EQ(v12.collection, "pics_2024");
  EXPECT_EQ(v12.idx, dir / "pics_2024_12.idx");
  ASSERT_TRUE(v12.vif);
  EXPECT_EQ(*v12.vif, dir / "pics_2024_12.vif");

  ASSERT_EQ(report->warnings.size(), 3u);
  std::string all;
  for (const auto& w : report->warnings)
    all += w + "\n";
  EXPECT_NE(all.find("5.dat"), std::string::npos) << all;
  EXPECT_NE(all.find("5.idx"), std::string::npos) << all;
  EXPECT_NE(all.find("healthy_volume.dat"), std::string::npos) << all;
  EXPECT_NE(all.find("duplicate volume id 3"), std::string::npos) << all;
}

// Issue 15 (5): what the volume server does not load is not exported either.
TEST(VolumeFiles, SkipsVolumesWeedDoesNotLoad) {
  testing::TempDir dir;
  for (const char* base : {"1", "2", "pics_3"}) {
    Touch(dir / (std::string(base) + ".dat"));
    Touch(dir / (std::string(base) + ".idx"));
  }
  Touch(dir / "2.note", "copy interrupted");  // unfinished copy: weed deletes it at load
  Touch(dir / "pics_3.ecx");                  // EC volume: served from its shards
  auto report = DiscoverVolumes(dir.path());
  ASSERT_TRUE(report) << report.error().ToString();
  ASSERT_EQ(report->volumes.size(), 1u);
  EXPECT_EQ(report->volumes[0].volume_id, 1u);
  std::string all;
  for (const auto& w : report->warnings)
    all += w + "\n";
  EXPECT_NE(all.find("2.note"), std::string::npos) << all;
  EXPECT_NE(all.find("pics_3.ecx"), std::string::npos) << all;
}

TEST(VolumeFiles, MissingDirectoryIsAnIOError) {
  testing::TempDir dir;
  auto report = DiscoverVolumes(dir / "nope");
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code(), Code::kIOError);
  EXPECT_NE(report.error().message().find("nope"), std::string::npos);
}

TEST(VolumeFiles, OffsetWidthFromVif) {
  testing::TempDir dir;
  VolumeFiles v;
  v.volume_id = 1;
  // No .vif: the fallback.
  EXPECT_EQ(VolumeOffsetWidth(v, OffsetWidth::k4).value(), OffsetWidth::k4);
  EXPECT_EQ(VolumeOffsetWidth(v, OffsetWidth::k5).value(), OffsetWidth::k5);
  v.vif = dir / "1.vif";
  struct Case {
    const char* json;
    OffsetWidth fallback;
    OffsetWidth want;
  };
  for (const Case& c : {
           Case{R"({"version": 3, "bytesOffset": 5})", OffsetWidth::k4, OffsetWidth::k5},
           Case{R"({"version": 3, "bytesOffset": 4})", OffsetWidth::k5, OffsetWidth::k4},
           Case{R"({"version": 3, "replication": "000"})", OffsetWidth::k5, OffsetWidth::k5},
           Case{R"({"bytesOffset": "5"})", OffsetWidth::k4, OffsetWidth::k5},
           Case{R"({"bytes_offset": 5})", OffsetWidth::k4, OffsetWidth::k5},
           Case{R"({"bytesOffset": 0})", OffsetWidth::k4, OffsetWidth::k4},
           Case{"", OffsetWidth::k4, OffsetWidth::k4},  // empty .vif: no information
           Case{R"({
  "files": [],
  "version": 3,
  "replication": "001",
  "bytesOffset": 5,
  "datFileSize": "0",
  "expireAtSec": "0",
  "readOnly": false
})",
                OffsetWidth::k4, OffsetWidth::k5},
       }) {
    Touch(*v.vif, c.json);
    auto w = VolumeOffsetWidth(v, c.fallback);
    ASSERT_TRUE(w) << c.json << ": " << w.error().ToString();
    EXPECT_EQ(*w, c.want) << c.json;
  }
  for (const char* bad : {"{", "[]", R"({"bytesOffset": 8})", R"({"bytesOffset": "x"})",
                          R"({"bytesOffset": -4})", R"({"bytesOffset": 4.5})"}) {
    Touch(*v.vif, bad);
    auto w = VolumeOffsetWidth(v, OffsetWidth::k4);
    ASSERT_FALSE(w) << bad;
    EXPECT_EQ(w.error().code(), Code::kCorruption) << bad;
    EXPECT_NE(w.error().message().find("1.vif"), std::string::npos);
  }
}

}  // namespace
}  // namespace swrdma
