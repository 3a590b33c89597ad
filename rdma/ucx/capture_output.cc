#include "rdma/ucx/capture_output.h"

#include <cstdlib>

namespace swrdma::rdma {

std::string CaptureOutput(const std::function<void(FILE*)>& print) {
  char* buffer = nullptr;
  size_t size = 0;
  FILE* stream = open_memstream(&buffer, &size);
  if (stream == nullptr) return {};
  print(stream);
  std::fclose(stream);  // flushes; buffer/size are valid only after this
  std::string out(buffer != nullptr ? buffer : "", size);
  std::free(buffer);
  return out;
}

}  // namespace swrdma::rdma
