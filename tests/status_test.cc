#include "protocol/status.h"

#include <set>

#include <gtest/gtest.h>

namespace swrdma {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return Error(Code::kInvalidArgument, "odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  SWRDMA_ASSIGN_OR_RETURN(int h, Half(x));
  SWRDMA_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status MustBeEven(int x) {
  if (x % 2 != 0) return Status(Code::kInvalidArgument, "odd");
  return Status::Ok();
}

Status CheckEven(int x) {
  SWRDMA_RETURN_IF_ERROR(MustBeEven(x));
  return Status::Ok();
}

Result<int> EvenOrError(int x) {
  SWRDMA_RETURN_IF_ERROR(MustBeEven(x));
  return x;
}

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "ok");
}

TEST(Status, CarriesCodeAndMessage) {
  Status s(Code::kChecksumMismatch, "needle 3,01: stored 1 computed 2");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kChecksumMismatch);
  EXPECT_EQ(s.ToString(), "checksum_mismatch: needle 3,01: stored 1 computed 2");
  EXPECT_EQ(s.WithContext("reading 3.dat").message(),
            "reading 3.dat: needle 3,01: stored 1 computed 2");
}

TEST(Status, MacrosPropagateErrors) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(3).code(), Code::kInvalidArgument);
  EXPECT_EQ(*EvenOrError(4), 4);
  EXPECT_EQ(EvenOrError(5).error().code(), Code::kInvalidArgument);
}

TEST(Status, EveryCodeHasADistinctName) {
  std::set<std::string_view> names;
  for (int c = 0; c <= static_cast<int>(Code::kInternal); ++c) {
    auto name = code_name(static_cast<Code>(c));
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << name;
  }
}

}  // namespace
}  // namespace swrdma
