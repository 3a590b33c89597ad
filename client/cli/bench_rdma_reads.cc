#include "client/cli/bench_rdma_reads.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "protocol/gzip.h"

namespace swrdma::cli {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t Nanos(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

}  // namespace

void RunRdmaReads(client::Client& c, const RdmaReadLoop& loop) {
  const size_t k = loop.inflight;
  std::vector<std::string> batch;
  // Assigned in place: the strings keep their buffers from chunk to chunk, so the loop itself
  // allocates nothing per read (a fid is longer than the small-string buffer).
  auto fill = [&](size_t n) {
    batch.resize(n);
    for (size_t i = 0; i < n; ++i)
      batch[i].assign(loop.next_fid());
  };
  // A zero-copy view, verified by the client; gunzipped here as Read would.
  auto record_view = [&](const Result<client::NeedleView>& r, uint64_t nanos) {
    if (!r) return loop.fail(r.error().ToString());
    uint64_t size = r->data().size();
    if (r->stored_gzipped() && !r->decompressed()) {
      auto plain = Gunzip(r->data());
      if (!plain) return loop.fail(plain.error().ToString());
      size = plain->size();
    }
    loop.ok(nanos, size);
  };
  if (loop.copy) {  // the copying API: Read (K = 1) or lock-step ReadMany windows
    while (const size_t n = loop.claim(k)) {
      fill(n);
      const Clock::time_point t0 = Clock::now();
      auto results = c.ReadMany(batch);
      const uint64_t nanos = Nanos(Clock::now() - t0);
      for (auto& r : results) {
        if (r) {
          loop.ok(nanos, r->data.size());
        } else {
          loop.fail(r.error().ToString());
        }
      }
      loop.done(n);
    }
  } else if (k == 1) {
    while (loop.claim(1)) {
      const std::string& fid = loop.next_fid();
      const Clock::time_point t0 = Clock::now();
      auto r = c.ReadView(fid);
      record_view(r, Nanos(Clock::now() - t0));
      loop.done(1);
    }
  } else if (!loop.sliding) {
    while (const size_t n = loop.claim(k)) {
      fill(n);
      const Clock::time_point t0 = Clock::now();
      auto results = c.ReadViews(batch);
      const uint64_t nanos = Nanos(Clock::now() - t0);
      for (auto& r : results)
        record_view(r, nanos);
      loop.done(n);
    }
  } else {
    // Sliding window: K gets in flight at all times within a chunk of fids; each read's own
    // latency (posted -> verified). Chunks of ~50 ms bound how late --seconds stops.
    size_t chunk = k * 8;
    while (const size_t n = loop.claim(chunk)) {
      fill(n);
      const Clock::time_point t0 = Clock::now();
      c.ReadEach(batch, [&](size_t, Result<client::NeedleView> r) {
        record_view(r, r ? Nanos(r->verified() - r->issued()) : 0);
      });
      const double per_read = std::chrono::duration<double>(Clock::now() - t0).count() / n;
      chunk = std::clamp<size_t>(static_cast<size_t>(0.05 / std::max(per_read, 1e-9)), k, k * 16);
      loop.done(n);
    }
  }
}

}  // namespace swrdma::cli
