#include "protocol/byte_size.h"

#include <cctype>
#include <charconv>
#include <cstdint>
#include <iterator>

#include <fmt/format.h>

namespace swrdma {

Result<uint64_t> ParseByteSize(std::string_view text) {
  auto bad = [&] {
    return Error(Code::kInvalidArgument,
                 fmt::format("'{}' is not a size (examples: 4096, 4K, 1M, 2G)", text));
  };
  uint64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || p == begin) return bad();
  std::string suffix(p, end);
  for (char& c : suffix)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (suffix.ends_with("IB")) {
    suffix.resize(suffix.size() - 2);
  } else if (suffix.size() == 2 && suffix.back() == 'B') {
    suffix.pop_back();
  }
  int shift = 0;
  if (suffix.empty() || suffix == "B") {
    shift = 0;
  } else if (suffix == "K") {
    shift = 10;
  } else if (suffix == "M") {
    shift = 20;
  } else if (suffix == "G") {
    shift = 30;
  } else if (suffix == "T") {
    shift = 40;
  } else {
    return bad();
  }
  if (shift != 0 && value > (UINT64_MAX >> shift)) return bad();
  return value << shift;
}

std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, kUnits[u]);
}

}  // namespace swrdma
