// The bench's latency histogram: bucket bounds, percentile accuracy, merging.
#include "client/cli/latency_histogram.h"

#include <random>

#include <gtest/gtest.h>

namespace swrdma::cli {
namespace {

TEST(LatencyHistogramTest, EveryValueFallsInsideItsBucket) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100'000; ++i) {
    const uint64_t v = rng() >> (rng() % 64);
    const size_t b = LatencyHistogram::Index(v);
    ASSERT_LT(b, LatencyHistogram::kBuckets);
    EXPECT_LE(LatencyHistogram::Lowest(b), v);
    if (b + 1 < LatencyHistogram::kBuckets) {
      EXPECT_LT(v, LatencyHistogram::Lowest(b + 1)) << v;
    }
  }
  EXPECT_EQ(LatencyHistogram::Index(UINT64_MAX), LatencyHistogram::kBuckets - 1);
  for (uint64_t v = 0; v < 2000; ++v)
    EXPECT_LE(LatencyHistogram::Index(v), LatencyHistogram::Index(v + 1));
}

TEST(LatencyHistogramTest, PercentilesWithinBucketPrecision) {
  LatencyHistogram h;
  for (uint64_t us = 1; us <= 10'000; ++us)
    h.Record(us * 1000);
  EXPECT_EQ(h.count(), 10'000u);
  EXPECT_EQ(h.min(), 1000u);
  EXPECT_EQ(h.max(), 10'000'000u);
  EXPECT_NEAR(h.mean(), 5'000'500.0, 1.0);
  EXPECT_NEAR(static_cast<double>(h.Percentile(0.5)), 5e6, 5e6 * 0.016);
  EXPECT_NEAR(static_cast<double>(h.Percentile(0.99)), 9.9e6, 9.9e6 * 0.016);
  EXPECT_EQ(h.Percentile(1.0), 10'000'000u);  // clamped to the exact max
  EXPECT_EQ(h.Percentile(0.0), 1000u);        // clamped to the exact min
  LatencyHistogram small;
  for (uint64_t v : {5, 7, 9})
    small.Record(v);
  EXPECT_EQ(small.Percentile(0.5), 7u);  // exact below 128 ns
}

TEST(LatencyHistogramTest, MergeAddsCounts) {
  LatencyHistogram a, b, empty;
  EXPECT_EQ(empty.Percentile(0.5), 0u);
  EXPECT_EQ(empty.min(), 0u);
  for (int i = 0; i < 100; ++i)
    a.Record(100);
  for (int i = 0; i < 300; ++i)
    b.Record(1'000'000);
  a.Merge(b);
  a.Merge(empty);
  EXPECT_EQ(a.count(), 400u);
  EXPECT_EQ(a.min(), 100u);
  EXPECT_EQ(a.Percentile(0.25), 100u);
  EXPECT_NEAR(static_cast<double>(a.Percentile(0.26)), 1e6, 1e6 * 0.016);
}

}  // namespace
}  // namespace swrdma::cli
