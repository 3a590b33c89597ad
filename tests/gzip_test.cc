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

// Issue 15 (2): a client may upload several gzip members one after another with
// Content-Encoding: gzip; weed (Go's multistream gzip.Reader) returns all of them.
TEST(Gzip, ConcatenatedMembersAreAllRead) {
  auto a = Text(20000), b = Text(3000), c = Text(1);
  std::vector<uint8_t> z = *Gzip(a);
  for (const auto* part : {&b, &c}) {
    auto more = *Gzip(*part);
    z.insert(z.end(), more.begin(), more.end());
  }
  auto back = Gunzip(z);
  ASSERT_TRUE(back) << back.error().ToString();
  std::vector<uint8_t> want = a;
  want.insert(want.end(), b.begin(), b.end());
  want.insert(want.end(), c.begin(), c.end());
  EXPECT_EQ(*back, want);
  // A second member cut short, or garbage after a member, is corruption (as in Go).
  std::vector<uint8_t> cut(z.begin(), z.end() - 5);
  EXPECT_EQ(Gunzip(cut).error().code(), Code::kCorruption);
  std::vector<uint8_t> trailing = *Gzip(a);
  trailing.push_back(0);
  trailing.push_back(0);
  EXPECT_EQ(Gunzip(trailing).error().code(), Code::kCorruption);
}

// Issue 15 (6): the compressed flag on data that is not gzip: weed serves the bytes as stored.
TEST(Gzip, NeedleDataWithoutTheMagicIsServedAsStored) {
  std::vector<uint8_t> raw = {1, 2, 3, 4, 5};
  EXPECT_FALSE(IsGzipData(raw));
  EXPECT_EQ(*DecompressNeedleData(raw), raw);
  EXPECT_EQ(*DecompressNeedleData(std::vector<uint8_t>{0x1f}), std::vector<uint8_t>{0x1f});
  EXPECT_TRUE(DecompressNeedleData(std::vector<uint8_t>{}).has_value());
  auto z = *Gzip(Text(100));
  EXPECT_TRUE(IsGzipData(z));
  EXPECT_EQ(*DecompressNeedleData(z), Text(100));
  // With the magic but broken: corruption, not the stored bytes.
  z.resize(z.size() / 2);
  EXPECT_EQ(DecompressNeedleData(z).error().code(), Code::kCorruption);
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
