// The needle index's lookup cache alone (index/lookup_cache.h): what it keeps, that an answer read
// before an invalidation is never kept after it, and its bound. With the index:
// needle_index_test's NeedleIndexCache tests.
#include "index/lookup_cache.h"

#include <gtest/gtest.h>

namespace swrdma {
namespace {

NeedleLookup Found(uint64_t offset, uint64_t generation = 1) {
  NeedleLookup l;
  l.outcome = LookupOutcome::kFound;
  l.location = {offset, 100, 0, generation};
  return l;
}

TEST(LookupCacheTest, KeepsFoundAndDeletedAnswersPerVolumeAndNeedle) {
  LookupCache cache(1024);
  LookupCache::Ticket t;
  EXPECT_FALSE(cache.Find(1, 7, t));
  cache.Fill(1, 7, Found(4096), t);
  auto hit = cache.Find(1, 7, t);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->location.offset, 4096u);
  EXPECT_FALSE(cache.Find(2, 7, t)) << "another volume, same needle id";
  NeedleLookup deleted;
  deleted.outcome = LookupOutcome::kDeleted;
  cache.Fill(2, 7, deleted, t);
  ASSERT_TRUE(cache.Find(2, 7, t));
  EXPECT_EQ(cache.Find(2, 7, t)->outcome, LookupOutcome::kDeleted);
  // Answers about needles or volumes that do not exist are not kept.
  for (auto o : {LookupOutcome::kUnknownNeedle, LookupOutcome::kUnknownVolume}) {
    NeedleLookup none;
    none.outcome = o;
    EXPECT_FALSE(cache.Find(3, 9, t));
    cache.Fill(3, 9, none, t);
    EXPECT_FALSE(cache.Find(3, 9, t));
  }
  const LookupCacheStats s = cache.stats();
  EXPECT_EQ(s.entries, 2u);
  EXPECT_EQ(s.hits, 3u);
  EXPECT_GE(s.misses, 4u);
}

TEST(LookupCacheTest, AnAnswerReadBeforeAnInvalidationIsNotKept) {
  LookupCache cache(1024);
  // A miss, then the writer changes the needle, then the reader's (old) answer arrives.
  LookupCache::Ticket t;
  ASSERT_FALSE(cache.Find(1, 7, t));
  cache.Invalidate(1, 7);
  cache.Fill(1, 7, Found(4096), t);
  EXPECT_FALSE(cache.Find(1, 7, t));
  // The same with a whole rebuild in between.
  cache.Fill(1, 7, Found(8192), t);  // a fresh ticket from the miss just above: kept
  ASSERT_TRUE(cache.Find(1, 7, t));
  LookupCache::Ticket t2;
  ASSERT_FALSE(cache.Find(1, 8, t2));
  cache.InvalidateAll();
  cache.Fill(1, 8, Found(1), t2);
  EXPECT_FALSE(cache.Find(1, 8, t2));
  EXPECT_FALSE(cache.Find(1, 7, t)) << "InvalidateAll drops what was kept";
  // Invalidate drops a kept entry.
  cache.Fill(1, 7, Found(16384), t);
  ASSERT_TRUE(cache.Find(1, 7, t));
  cache.Invalidate(1, 7);
  EXPECT_FALSE(cache.Find(1, 7, t));
}

TEST(LookupCacheTest, StaysWithinItsCapacityAndZeroIsOff) {
  LookupCache cache(640);
  LookupCache::Ticket t;
  for (uint64_t n = 0; n < 100'000; ++n) {
    if (!cache.Find(5, n, t)) cache.Fill(5, n, Found(n), t);
  }
  EXPECT_LE(cache.stats().entries, 640u);
  EXPECT_GT(cache.stats().entries, 0u);
  // Recently filled needles are mostly there.
  size_t recent = 0;
  for (uint64_t n = 100'000 - 64; n < 100'000; ++n)
    recent += cache.Find(5, n, t) ? 1 : 0;
  EXPECT_GT(recent, 0u);

  LookupCache off(0);
  EXPECT_FALSE(off.Find(1, 1, t));
  off.Fill(1, 1, Found(1), t);
  EXPECT_FALSE(off.Find(1, 1, t));
  EXPECT_EQ(off.stats().entries, 0u);
}

}  // namespace
}  // namespace swrdma
