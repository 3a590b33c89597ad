#include "agent/hot_first.h"

#include <algorithm>

#include <fmt/format.h>

namespace swrdma::agent {

bool HotFirstPinning::active() const {
  return budget_ != nullptr && remote_ != nullptr && remote_->PinsMemory() &&
         budget_->limit() != rdma::PinBudget::kUnlimited;
}

void HotFirstPinning::Rebalance(std::span<const std::pair<uint32_t, const ExportedVolume*>> volumes,
                                Clock::time_point now, std::vector<std::string>& messages) {
  if (!active()) return;
  struct Candidate {
    uint32_t vid;
    const ExportedVolume* e;
    double heat;
  };
  std::vector<Candidate> wanting, holding;
  std::map<uint32_t, Heat> next;
  for (const auto& [vid, e] : volumes) {
    if (!e->remote()) continue;
    Heat h;
    if (auto it = heat_.find(vid); it != heat_.end() && it->second.generation == e->generation())
      h = it->second;
    else
      h.kept_until = now + options_.warmup;
    h.generation = e->generation();
    const uint64_t reads = e->reads();
    h.heat = h.heat / 2 + static_cast<double>(reads - std::min(reads, h.last_reads));
    h.last_reads = reads;
    next[vid] = h;
    if (e->size() > e->remote_covered()) {
      wanting.push_back({vid, e, h.heat});
    } else if (e->remote_covered() > 0 && now >= h.kept_until) {
      holding.push_back({vid, e, h.heat});
    }
  }
  heat_ = std::move(next);  // volumes gone from the map are forgotten
  if (wanting.empty() || holding.empty()) return;
  std::ranges::sort(wanting, [](const auto& a, const auto& b) { return a.heat > b.heat; });
  std::ranges::sort(holding, [](const auto& a, const auto& b) { return a.heat < b.heat; });

  const uint64_t limit = budget_->limit();
  for (const Candidate& w : wanting) {
    if (w.heat < options_.min_heat) break;  // sorted: the rest are colder
    const uint64_t need = w.e->size() - w.e->remote_covered();
    if (need > limit) continue;  // never fits, whatever is dropped
    uint64_t room = limit - std::min(limit, budget_->used());
    std::vector<const Candidate*> victims;
    for (const Candidate& v : holding) {
      if (room >= need) break;
      if (v.heat * options_.hysteresis >= w.heat) break;  // sorted: the rest are hotter
      victims.push_back(&v);
      room += v.e->remote_covered();
    }
    if (room < need) continue;  // a colder one may still fit in what can be freed
    std::vector<std::string> names;
    uint64_t dropped = 0;
    for (const Candidate* v : victims) {
      dropped += v->e->DropRemote();
      names.push_back(fmt::format("{} (heat {:.0f})", v->vid, v->heat));
    }
    dropped_bytes_.fetch_add(dropped, std::memory_order_relaxed);
    Status registered = w.e->SetServedSize(w.e->size());
    if (w.e->remote_covered() < w.e->size()) {
      // Lost the room to something else (a retired generation's reservation still held):
      // nothing is worse than before the swap, the next scans register what fits again.
      messages.push_back(
          fmt::format("volume {}: hot-first swap did not register it after dropping {}: {}", w.vid,
                      fmt::join(names, ", "), registered.ok() ? "no room" : registered.ToString()));
      return;
    }
    heat_[w.vid].kept_until = now + options_.min_dwell;
    swaps_.fetch_add(1, std::memory_order_relaxed);
    messages.push_back(fmt::format(
        "volume {} (heat {:.0f}, {} bytes) registered for RDMA READ in place of volume(s) {}: "
        "hotter volumes first within --max-pinned-bytes; those are read checked now",
        w.vid, w.heat, need, fmt::join(names, ", ")));
    return;  // one swap per scan
  }
}

}  // namespace swrdma::agent
