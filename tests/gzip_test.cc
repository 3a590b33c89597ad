#include "protocol/gzip.h"

#include <string>

#include <gtest/gtest.h>

namespace swrdma {
namespace {

std::vector<uint8_t> Text(size_t n) {
  std::string s;
  while (s.size() < n)
    s += "seaweedfs stores needles in volumes; ";
  s.resize(n);
  return {s.begin(), s.end()};
}

TEST(Gzip, RoundTrips) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{1000}, size_t{3 << 20}}) {
    auto data = Text(n);
    auto z = Gzip(data);
    ASSERT_TRUE(z);
    ASSERT_GE(z->size(), 18u);
    EXPECT_EQ((*z)[0], 0x1f);
    EXPECT_EQ((*z)[1], 0x8b);
    auto back = Gunzip(*z);
    ASSERT_TRUE(back) << back.error().ToString();
    EXPECT_EQ(*back, data);
  }
}

TEST(Gzip, GarbageAndTruncationAreCorruption) {
  auto z = *Gzip(Text(5000));
  std::vector<uint8_t> garbage = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(Gunzip(garbage).error().code(), Code::kCorruption);
  std::vector<uint8_t> cut(z.begin(), z.begin() + z.size() / 2);
  EXPECT_EQ(Gunzip(cut).error().code(), Code::kCorruption);
  EXPECT_EQ(Gunzip({}).error().code(), Code::kCorruption);
}

TEST(Gzip, OutputLimitStopsBombs) {
  auto z = *Gzip(std::vector<uint8_t>(10 << 20, 0));
  EXPECT_LT(z.size(), 100000u);
  auto r = Gunzip(z, 1 << 20);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kResourceExhausted);
}

}  // namespace
}  // namespace swrdma
