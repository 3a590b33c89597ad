// The timed loop of one `swrdma bench` rdma worker, in its four forms: zero-copy ReadView
// (K = 1), ReadViews windows of K (default for K > 1), a sliding window of K gets through
// ReadEach (--sliding: each read's own latency), and the copying Read/ReadMany (--copy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "client/client.h"

namespace swrdma::cli {

struct RdmaReadLoop {
  size_t inflight = 1;
  bool copy = false;
  bool sliding = false;
  // Reads the loop may do next (at most k), 0 when the run is over.
  std::function<size_t(size_t k)> claim;
  // The next fid to read (random among the sampled ones).
  std::function<const std::string&()> next_fid;
  // A verified read of `size` data bytes (decompressed) and its latency; a failed one.
  std::function<void(uint64_t nanos, uint64_t size)> ok;
  std::function<void(std::string error)> fail;
  // `n` reads finished, ok or not (progress lines).
  std::function<void(size_t n)> done;
};

void RunRdmaReads(client::Client& c, const RdmaReadLoop& loop);

}  // namespace swrdma::cli
