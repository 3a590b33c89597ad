// Captures what a C "print to FILE*" function writes (ucp_*_print_info) as a string, through an
// in-memory stream (open_memstream), so it can be parsed or logged.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

namespace swrdma::rdma {

// Runs `print` with a FILE* backed by memory and returns everything it wrote. Returns an empty
// string if the memory stream cannot be created (out of memory).
std::string CaptureOutput(const std::function<void(FILE*)>& print);

}  // namespace swrdma::rdma
