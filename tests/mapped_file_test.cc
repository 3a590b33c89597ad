// MappedFile: shared read-only and writable mappings of regular files.
#include "rdma/mapped_file.h"

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace swrdma::rdma {
namespace {

void WriteFile(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string AsString(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

TEST(MappedFileTest, MapsTheWholeFileReadOnly) {
  testing::TempDir dir;
  WriteFile(dir / "a", "hello mapped world");
  auto mapped = MappedFile::Open(dir / "a");
  ASSERT_TRUE(mapped.has_value()) << mapped.error().ToString();
  EXPECT_EQ(mapped->size(), 18u);
  EXPECT_EQ(AsString(mapped->bytes()), "hello mapped world");
  EXPECT_EQ(mapped->mutable_data(), nullptr);
  EXPECT_TRUE(mapped->Advise(MapAdvice::kRandom).ok());
  EXPECT_TRUE(mapped->Advise(MapAdvice::kWillNeed, 5, 3).ok());
}

TEST(MappedFileTest, MapsAPrefixAndSeesWritesMadeThroughTheFile) {
  testing::TempDir dir;
  WriteFile(dir / "a", "0123456789");
  auto mapped = MappedFile::Open(dir / "a", {.length = 4});
  ASSERT_TRUE(mapped.has_value()) << mapped.error().ToString();
  EXPECT_EQ(AsString(mapped->bytes()), "0123");
  {
    std::fstream f(dir / "a", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1);
    f << "X";
  }
  EXPECT_EQ(AsString(mapped->bytes()), "0X23");  // MAP_SHARED: the page cache is shared
}

TEST(MappedFileTest, WritableMappingWritesTheFile) {
  testing::TempDir dir;
  WriteFile(dir / "a", "abcdef");
  {
    auto mapped = MappedFile::Open(dir / "a", {.mode = MapMode::kReadWrite});
    ASSERT_TRUE(mapped.has_value()) << mapped.error().ToString();
    ASSERT_NE(mapped->mutable_data(), nullptr);
    mapped->mutable_data()[0] = std::byte{'Z'};
  }
  EXPECT_EQ(ReadFile(dir / "a"), "Zbcdef");
}

TEST(MappedFileTest, EmptyFileGivesAnEmptyMapping) {
  testing::TempDir dir;
  WriteFile(dir / "empty", "");
  auto mapped = MappedFile::Open(dir / "empty");
  ASSERT_TRUE(mapped.has_value()) << mapped.error().ToString();
  EXPECT_EQ(mapped->size(), 0u);
  EXPECT_EQ(mapped->data(), nullptr);
}

TEST(MappedFileTest, Errors) {
  testing::TempDir dir;
  auto missing = MappedFile::Open(dir / "missing");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  EXPECT_NE(missing.error().message().find("missing"), std::string::npos);

  WriteFile(dir / "small", "abc");
  auto too_long = MappedFile::Open(dir / "small", {.length = 4});
  ASSERT_FALSE(too_long.has_value());
  EXPECT_EQ(too_long.error().code(), Code::kInvalidArgument);

  auto directory = MappedFile::Open(dir.path());
  ASSERT_FALSE(directory.has_value());
  EXPECT_EQ(directory.error().code(), Code::kInvalidArgument);
}

TEST(MappedFileTest, MovesOwnership) {
  testing::TempDir dir;
  WriteFile(dir / "a", "xyz");
  auto mapped = MappedFile::Open(dir / "a");
  ASSERT_TRUE(mapped.has_value());
  MappedFile moved = std::move(*mapped);
  EXPECT_EQ(AsString(moved.bytes()), "xyz");
  EXPECT_EQ(mapped->data(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
}

}  // namespace
}  // namespace swrdma::rdma
