// NeedleIndex::SampleLive on generated volumes: only live needles of the asked volume, distinct,
// deterministic per seed, both the whole-scan (reservoir) and the random-seek strategies.
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "index/needle_index.h"
#include "tests/test_util.h"
#include "volume/volume_files.h"
#include "volume/volume_generator.h"

namespace swrdma {
namespace {

using testing::TempDir;

class SampleLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Volume 5: 500 needles, ~30 % deleted. Volume 6 beside it (adjacent key range) and volume 7
    // with every needle deleted.
    Generate(5, 500, 0.3, 1);
    Generate(6, 50, 0.0, 10'000);
    Generate(7, 20, 1.0, 20'000);
    auto index = NeedleIndex::Open(dir_ / "index");
    ASSERT_TRUE(index) << index.error().ToString();
    index_ = std::move(*index);
    auto found = DiscoverVolumes(dir_.path());
    ASSERT_TRUE(found) << found.error().ToString();
    for (const auto& v : found->volumes) {
      auto r = index_->SyncVolume(v);
      ASSERT_TRUE(r) << r.error().ToString();
    }
  }

  void Generate(uint32_t vid, uint64_t n, double deleted, uint64_t first_id) {
    GenerateOptions o;
    o.dir = dir_.path();
    o.volume_id = vid;
    o.needles = n;
    o.min_size = 10;
    o.max_size = 200;
    o.delete_fraction = deleted;
    o.first_needle_id = first_id;
    o.seed = vid;
    auto r = GenerateVolume(o, {});
    ASSERT_TRUE(r) << r.error().ToString();
    for (const auto& nd : r->needles) {
      if (!nd.deleted) live_[vid][nd.fid.needle_id] = nd.offset;
    }
  }

  // Every sampled needle is a distinct live needle of `vid` at its true offset.
  void ExpectLiveAndDistinct(uint32_t vid, const std::vector<SampledNeedle>& sample) {
    std::set<uint64_t> ids;
    for (const auto& s : sample) {
      auto it = live_[vid].find(s.needle_id);
      ASSERT_NE(it, live_[vid].end()) << "needle " << s.needle_id << " is not live in " << vid;
      EXPECT_EQ(s.location.offset, it->second);
      EXPECT_GT(s.location.size, 0u);
      EXPECT_TRUE(ids.insert(s.needle_id).second) << "needle " << s.needle_id << " twice";
    }
  }

  std::vector<SampledNeedle> Sample(uint32_t vid, size_t count, uint64_t seed,
                                    uint64_t full_scan_entries = 256 * 1024) {
    SampleOptions o;
    o.count = count;
    o.seed = seed;
    o.full_scan_entries = full_scan_entries;
    auto r = index_->SampleLive(vid, o);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : std::vector<SampledNeedle>{};
  }

  TempDir dir_;
  std::unique_ptr<NeedleIndex> index_;
  std::map<uint32_t, std::map<uint64_t, uint64_t>> live_;  // vid -> needle id -> offset
};

TEST_F(SampleLiveTest, WholeScanReturnsDistinctLiveNeedlesDeterministically) {
  const auto a = Sample(5, 100, 42);
  ASSERT_EQ(a.size(), 100u);
  ExpectLiveAndDistinct(5, a);
  const auto b = Sample(5, 100, 42);
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i].needle_id, b[i].needle_id);
  const auto c = Sample(5, 100, 43);
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i)
    differs |= a[i].needle_id != c[i].needle_id;
  EXPECT_TRUE(differs) << "another seed should draw another sample";
}

TEST_F(SampleLiveTest, AskingForMoreThanLiveReturnsEveryLiveNeedle) {
  for (uint64_t scan_limit : {uint64_t{0}, uint64_t{1} << 20}) {
    const auto all = Sample(5, 10'000, 7, scan_limit);
    ExpectLiveAndDistinct(5, all);
    EXPECT_EQ(all.size(), live_[5].size());
  }
  const auto six = Sample(6, 1000, 1);
  ExpectLiveAndDistinct(6, six);
  EXPECT_EQ(six.size(), 50u);  // none of volume 5 or 7 leaks in
}

TEST_F(SampleLiveTest, EveryLiveNeedleCanBeDrawn) {
  std::set<uint64_t> seen;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    for (const auto& s : Sample(5, 50, seed))
      seen.insert(s.needle_id);
  }
  EXPECT_EQ(seen.size(), live_[5].size());
}

TEST_F(SampleLiveTest, RandomSeeksStayInTheVolumeAndSkipDeleted) {
  // full_scan_entries 0 forces the seek strategy even on this small volume.
  const auto a = Sample(5, 100, 3, 0);
  ExpectLiveAndDistinct(5, a);
  EXPECT_GT(a.size(), 80u);  // collisions may cost a few, not most
  EXPECT_LE(a.size(), 100u);
  const auto b = Sample(5, 100, 3, 0);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i].needle_id, b[i].needle_id);
  std::set<uint64_t> seen;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    for (const auto& s : Sample(5, 40, seed, 0))
      seen.insert(s.needle_id);
  }
  // Contiguous ids: every live needle is reachable by some seek.
  EXPECT_EQ(seen.size(), live_[5].size());
  ExpectLiveAndDistinct(6, Sample(6, 20, 9, 0));
}

TEST_F(SampleLiveTest, EmptyAndUnknown) {
  EXPECT_TRUE(Sample(7, 10, 1).empty());     // all deleted
  EXPECT_TRUE(Sample(7, 10, 1, 0).empty());  // all deleted, seek strategy
  EXPECT_TRUE(Sample(5, 0, 1).empty());
  SampleOptions o;
  auto r = index_->SampleLive(99, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kUnknownVolume);
}

}  // namespace
}  // namespace swrdma
