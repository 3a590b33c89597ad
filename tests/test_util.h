// Helpers shared by the test files: the shared fixtures folder and scratch directories.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <gtest/gtest.h>

namespace swrdma::testing {

// ../shared/fixtures beside the repository (or $SWRDMA_FIXTURES), if it is there.
std::optional<std::filesystem::path> FixturesDir();

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "swrdma-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace swrdma::testing

// Declares `dir` as the fixtures folder, or skips the test saying where it looked.
#define SWRDMA_REQUIRE_FIXTURES(dir)                                                      \
  auto dir##_opt = ::swrdma::testing::FixturesDir();                                      \
  if (!dir##_opt) {                                                                       \
    GTEST_SKIP() << "shared SeaweedFS fixtures not found (looked in " SWRDMA_FIXTURES_DIR \
                    " and $SWRDMA_FIXTURES); skipping conformance test";                  \
  }                                                                                       \
  const std::filesystem::path dir = *dir##_opt
