// Hot volumes first under the pin budget (--max-pinned-bytes).
//
// Without on-demand paging a verbs registration pins its pages, so the budget decides which
// volumes are read one-sided and which through the agent (checked reads, slower, agent CPU).
// Scan order (by volume id) decides at start; this keeps the choice following the load: every
// scan measures each volume's heat (reads the agent answered for it since the last scan,
// halved per scan) and, when the hottest volume left (partly) unregistered is more than
// `hysteresis` times hotter than the coldest registered ones, drops those and registers it in
// their place. At most one such swap per scan, and a volume registered by a swap is kept for
// `min_dwell`, so two volumes of similar load do not take turns. A volume (generation) the scan
// sees for the first time is not a victim for `warmup` either: its heat starts at zero, and
// without it the first volume read after a start takes the room of all those not read yet
// (a sequential pass over every volume would then read each one checked).
//
// The heat is what the agent sees: lookups (a client asks again once its lookup cache entry
// expires, 1 s by default) and every checked read. A registered volume's one-sided reads never
// reach the agent, which is why the hysteresis is large.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "agent/exported_volume.h"
#include "rdma/pin_budget.h"

namespace swrdma::agent {

struct HotFirstOptions {
  std::chrono::milliseconds min_dwell = std::chrono::seconds(60);
  std::chrono::milliseconds warmup = std::chrono::seconds(60);  // heat measured before a drop
  double hysteresis = 2.0;  // a victim must be this many times colder than the volume it yields to
  double min_heat = 8.0;    // colder volumes never trigger a swap
};

class HotFirstPinning {
 public:
  using Clock = std::chrono::steady_clock;
  // `budget` and `remote` as in ExportOptions; inactive when either is absent, the budget is
  // unlimited or the registrations pin nothing (on-demand paging).
  HotFirstPinning(rdma::PinBudget* budget, const rdma::Registrar* remote, HotFirstOptions options)
      : budget_(budget), remote_(remote), options_(options) {}

  // Called by every scan (one at a time) with the volumes the new map serves.
  void Rebalance(std::span<const std::pair<uint32_t, const ExportedVolume*>> volumes,
                 Clock::time_point now, std::vector<std::string>& messages);

  uint64_t swaps() const { return swaps_.load(std::memory_order_relaxed); }
  uint64_t dropped_bytes() const { return dropped_bytes_.load(std::memory_order_relaxed); }

 private:
  bool active() const;

  struct Heat {
    uint64_t generation = 0;
    uint64_t last_reads = 0;
    double heat = 0;
    Clock::time_point kept_until{};  // first seen or registered by a swap: not a victim before
  };

  rdma::PinBudget* budget_;
  const rdma::Registrar* remote_;
  HotFirstOptions options_;
  std::map<uint32_t, Heat> heat_;  // by volume id; touched by Rebalance only
  std::atomic<uint64_t> swaps_{0};
  std::atomic<uint64_t> dropped_bytes_{0};
};

}  // namespace swrdma::agent
