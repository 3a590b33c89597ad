// The pin budget (rdma/pin_budget.h): what registrations for RDMA may pin, and the sizes of
// --max-pinned-bytes. Its use by exports is in remote_export_test.cc (PinBudgetTest).
#include "rdma/pin_budget.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/byte_size.h"

namespace swrdma::rdma {
namespace {

TEST(PinBudget, ReservesUpToTheLimitAndGivesBackOnRelease) {
  PinBudget b(100);
  auto a = b.TryReserve(60);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(b.used(), 60u);
  EXPECT_FALSE(b.TryReserve(41).has_value()) << "61 + 40 > 100";
  EXPECT_EQ(b.refusals(), 1u);
  auto c = b.TryReserve(40);
  ASSERT_TRUE(c.has_value()) << "exactly the limit fits";
  EXPECT_EQ(b.used(), 100u);
  EXPECT_FALSE(b.TryReserve(1).has_value());
  {
    PinBudget::Reservation moved = std::move(*a);
    EXPECT_EQ(a->bytes(), 0u) << "moved from: holds nothing";
    EXPECT_EQ(b.used(), 100u) << "a move gives nothing back";
  }
  EXPECT_EQ(b.used(), 40u) << "the moved-to reservation gave its 60 back";
  a.reset();
  EXPECT_EQ(b.used(), 40u) << "the moved-from one gives back nothing twice";
  c.reset();
  EXPECT_EQ(b.used(), 0u);
}

TEST(PinBudget, HugeRequestsAreRefusedWithoutOverflow) {
  PinBudget b(1000);
  auto a = b.TryReserve(10);
  EXPECT_FALSE(b.TryReserve(UINT64_MAX).has_value());
  EXPECT_FALSE(b.TryReserve(UINT64_MAX - 5).has_value()) << "used + bytes would wrap";
  EXPECT_EQ(b.used(), 10u);
  PinBudget unlimited(PinBudget::kUnlimited);
  auto big = unlimited.TryReserve(uint64_t{1} << 50);
  EXPECT_TRUE(big.has_value());
  EXPECT_TRUE(unlimited.TryReserve(uint64_t{1} << 50).has_value());
  PinBudget none(0);
  EXPECT_FALSE(none.TryReserve(1).has_value()) << "0 pins nothing";
}

TEST(PinBudget, ConcurrentReservationsNeverPassTheLimit) {
  constexpr uint64_t kLimit = 1000;
  PinBudget b(kLimit);
  std::atomic<uint64_t> peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        auto r = b.TryReserve(7 + static_cast<uint64_t>(i % 13));
        const uint64_t now = b.used();
        uint64_t seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_LE(peak.load(), kLimit);
  EXPECT_EQ(b.used(), 0u) << "every reservation was given back";
}

TEST(PinBudget, LimitsParseAsSizesAutoOrUnlimited) {
  auto automatic = ParsePinLimit("auto");
  ASSERT_TRUE(automatic.has_value());
  EXPECT_FALSE(automatic->has_value()) << "auto: chosen at start";
  EXPECT_EQ(ParsePinLimit("unlimited")->value(), PinBudget::kUnlimited);
  EXPECT_EQ(ParsePinLimit("0")->value(), 0u);
  EXPECT_EQ(ParsePinLimit("64G")->value(), uint64_t{64} << 30);
  EXPECT_EQ(ParsePinLimit("512MiB")->value(), uint64_t{512} << 20);
  EXPECT_EQ(ParsePinLimit("1t")->value(), uint64_t{1} << 40);
  for (const char* bad : {"", "-1", "12X", "lots", "99999999999999999999T", "1.5G"}) {
    auto r = ParsePinLimit(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.error().message().find("unlimited"), std::string::npos)
        << "the error names the words it takes: " << r.error().message();
  }
}

TEST(PinBudget, TheDefaultIsHalfOfRamOrTheLockLimit) {
  const DefaultPinLimit d = ChooseDefaultPinLimit();
  EXPECT_GT(d.bytes, 0u);
  EXPECT_NE(d.bytes, PinBudget::kUnlimited) << "RAM is finite: " << d.why;
  EXPECT_FALSE(d.why.empty());
  EXPECT_EQ(PinLimitText(PinBudget::kUnlimited), "unlimited");
  EXPECT_EQ(PinLimitText(uint64_t{3} << 29), HumanBytes(uint64_t{3} << 29));
  EXPECT_EQ(HumanBytes(uint64_t{3} << 29), "1.5 GiB");
  EXPECT_EQ(HumanBytes(512), "512 B");
}

}  // namespace
}  // namespace swrdma::rdma
