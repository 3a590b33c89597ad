#include "rdma/ucx/ucx_resources.h"

#include <sstream>

namespace swrdma::rdma {

Result<std::vector<UcxResource>> ListUcxResources(const UcxContext& context) {
  std::string info = context.PrintInfo();
  std::vector<UcxResource> out;
  std::istringstream lines(info);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("resource") == std::string::npos) continue;
    size_t dashes = line.find("-- ");
    if (dashes == std::string::npos) continue;
    std::istringstream rest(line.substr(dashes + 3));
    std::string resource;
    rest >> resource;
    size_t slash = resource.find('/');
    if (slash == std::string::npos || slash == 0) continue;
    out.push_back(UcxResource{resource.substr(0, slash), resource.substr(slash + 1)});
  }
  if (out.empty()) {
    return Error(Code::kInternal,
                 "listing UCX resources: no \"resource\" lines in ucp_context_print_info output "
                 "(UCX output format changed?): " +
                     info.substr(0, 400));
  }
  return out;
}

}  // namespace swrdma::rdma
