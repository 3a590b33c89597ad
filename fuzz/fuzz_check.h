// The fuzz targets' invariant check: reports the failed invariant's line, then aborts so that
// libFuzzer saves the input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <source_location>

namespace swrdma::fuzz {

inline void Check(bool ok, std::source_location at = std::source_location::current()) {
  if (ok) return;
  std::fprintf(stderr, "%s:%u: fuzz invariant does not hold\n", at.file_name(), at.line());
  std::abort();
}

}  // namespace swrdma::fuzz
