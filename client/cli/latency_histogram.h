// A fixed-size latency histogram for `swrdma bench`: log-linear buckets (64 per power of two, so
// a reported percentile is within 1.6 % of the true value), exact below 128 ns, 30 KiB whatever
// the run length. One per thread, merged at the end.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <limits>

namespace swrdma::cli {

class LatencyHistogram {
 public:
  void Record(uint64_t nanos) {
    ++counts_[Index(nanos)];
    ++count_;
    sum_ += nanos;
    min_ = std::min(min_, nanos);
    max_ = std::max(max_, nanos);
  }

  void Merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < kBuckets; ++i)
      counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0; }

  // The value below which `q` (0..1) of the recorded values lie: the middle of the bucket holding
  // the ceil(q * count)-th smallest value, clamped to [min, max]; the smallest and the largest
  // exactly. 0 when empty.
  uint64_t Percentile(double q) const {
    if (count_ == 0) return 0;
    const double want = q * static_cast<double>(count_);
    uint64_t rank = static_cast<uint64_t>(want);
    if (static_cast<double>(rank) < want || rank == 0) ++rank;
    rank = std::min(rank, count_);
    if (rank == 1) return min_;  // the extremes are known exactly
    if (rank == count_) return max_;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::clamp(Middle(i), min(), max_);
    }
    return max_;
  }

  static constexpr size_t kSubBits = 6;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;  // buckets per power of two
  static constexpr uint64_t kExact = 2 * kSub;               // values below are their own bucket
  static constexpr size_t kBuckets = kExact + (64 - kSubBits - 1) * kSub;

  static size_t Index(uint64_t v) {
    if (v < kExact) return static_cast<size_t>(v);
    const int shift = std::bit_width(v) - static_cast<int>(kSubBits) - 1;  // v >> shift: [64,128)
    return kExact + (shift - 1) * kSub + ((v >> shift) - kSub);
  }
  // Smallest value of bucket `i`, and the middle of its range.
  static uint64_t Lowest(size_t i) {
    if (i < kExact) return i;
    const size_t shift = (i - kExact) / kSub + 1;
    return (kSub + (i - kExact) % kSub) << shift;
  }
  static uint64_t Middle(size_t i) {
    if (i < kExact) return i;
    const size_t shift = (i - kExact) / kSub + 1;
    return Lowest(i) + ((uint64_t{1} << shift) >> 1);
  }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = std::numeric_limits<uint64_t>::max();
  uint64_t max_ = 0;
};

}  // namespace swrdma::cli
