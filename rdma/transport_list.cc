#include "rdma/transport_list.h"

namespace swrdma::rdma {

std::optional<std::string> WithoutTransport(const std::optional<std::string>& list,
                                            std::string_view name, bool* named) {
  if (named != nullptr) *named = false;
  if (!list) return std::nullopt;
  std::string out;
  std::string_view rest = *list;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view t = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (t == name) {
      if (named != nullptr) *named = true;
      continue;
    }
    if (t.empty()) continue;
    if (!out.empty()) out += ',';
    out += t;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

}  // namespace swrdma::rdma
