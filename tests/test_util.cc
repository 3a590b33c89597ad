#include "tests/test_util.h"

#include <cstdlib>
#include <stdexcept>

#include <unistd.h>

namespace swrdma::testing {

std::optional<std::filesystem::path> FixturesDir() {
  if (const char* env = std::getenv("SWRDMA_FIXTURES"); env && *env) {
    std::filesystem::path p(env);
    if (std::filesystem::is_directory(p)) return p;
  }
  std::filesystem::path p(SWRDMA_FIXTURES_DIR);
  if (std::filesystem::exists(p / "ec_1.dat")) return p;
  return std::nullopt;
}

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace swrdma::testing
