// EcExport's registrations for one-sided reads (verbs): every local shard file, REMOTE_READ
// only, within the pin budget, and the RDMA READs a lookup answers for a needle in them.
#include <fmt/format.h>

#include "agent/ec_export.h"
#include "protocol/byte_size.h"

namespace swrdma::agent {

void EcExport::RegisterShards(const EcRemoteOptions& remote) {
  remote_asked_ = true;
  uint64_t total = 0;
  for (const auto& s : shards_) {
    if (s) total += s->size();
  }
  if (total == 0) return;
  // All of a volume's shards or none: a needle's pieces may lie in any of them, and one
  // reservation keeps the budget's accounting simple (shard files never grow).
  rdma::PinBudget::Reservation pinned;
  if (remote.pin_budget != nullptr && remote.registrar->PinsMemory()) {
    auto reserved = remote.pin_budget->TryReserve(total);
    if (!reserved) {
      remote_note_ = fmt::format(
          "EC volume {}: its {} of shards stay unregistered for RDMA READ: they would pass "
          "--max-pinned-bytes ({} of {} pinned); verbs clients read its needles through the "
          "agent (checked reads)",
          volume_id(), HumanBytes(total), HumanBytes(remote.pin_budget->used()),
          rdma::PinLimitText(remote.pin_budget->limit()));
      return;
    }
    pinned = std::move(*reserved);
  }
  std::vector<std::optional<ShardRemote>> regs(shards_.size());
  bool first = true;
  for (uint32_t i = 0; i < shards_.size(); ++i) {
    if (!shards_[i] || shards_[i]->size() == 0) continue;
    const rdma::MappedFile& m = *shards_[i];
    // ibv_reg_mr takes a non-const address: the registration is REMOTE_READ only (the verbs
    // registrar refuses anything else for an export), nothing writes through it.
    auto reg = remote.registrar->Register(const_cast<std::byte*>(m.data()), m.size(),
                                          rdma::RegionAccess::kRemoteRead);
    std::optional<std::vector<uint8_t>> key;
    if (reg) {
      if (auto k = (*reg)->PackKey()) key = std::move(*k);
    }
    if (!reg || !key) {
      remote_note_ = fmt::format(
          "EC volume {}: registering shard {} ({}) for RDMA READ failed: {}; verbs clients "
          "read its needles through the agent (checked reads)",
          volume_id(), i, m.path().string(),
          reg ? "the remote key could not be packed" : reg.error().ToString());
      return;  // the ones made so far go with `regs`, the reservation with `pinned`
    }
    ShardRemote r;
    if (first) r.pinned = std::move(pinned);  // the whole reservation rides on one shard
    first = false;
    r.address = reinterpret_cast<uint64_t>(m.data());
    r.length = m.size();
    r.rkey = std::move(*key);
    r.registration = std::move(*reg);
    regs[i].emplace(std::move(r));
  }
  remote_ = std::move(regs);
}

std::vector<EcShardRegion> EcExport::remote_regions() const {
  std::vector<EcShardRegion> out;
  for (uint32_t i = 0; i < remote_.size(); ++i) {
    if (remote_[i]) out.push_back({i, remote_[i]->address, remote_[i]->length, remote_[i]->rkey});
  }
  return out;
}

uint64_t EcExport::remote_registered_bytes() const {
  uint64_t n = 0;
  for (const auto& r : remote_) {
    if (r) n += r->length;
  }
  return n;
}

uint64_t EcExport::remote_unregistered_bytes() const {
  if (!remote_asked_) return 0;
  uint64_t held = 0;
  for (const auto& s : shards_) {
    if (s) held += s->size();
  }
  return held - remote_registered_bytes();
}

std::vector<EcInterval> EcExport::RemoteIntervals(const EcLocated& where) const {
  std::vector<EcInterval> out;
  if (remote_.empty() || !where.missing_shards.empty() || !where.rebuilt_shards.empty() ||
      where.intervals.empty() || where.intervals.size() > kMaxEcIntervals) {
    return out;
  }
  uint64_t total = 0;
  for (const ec::ShardInterval& iv : where.intervals) {
    if (iv.shard >= remote_.size() || !remote_[iv.shard] || iv.size == 0) return {};
    const ShardRemote& r = *remote_[iv.shard];
    // A piece past the registered shard (a shard shorter than its layout says) is read checked:
    // the agent's copy reports it, a READ past the region would fail the client's connection.
    if (iv.shard_offset > r.length || iv.size > r.length - iv.shard_offset) return {};
    out.push_back({iv.shard, iv.shard_offset, iv.size});
    total += iv.size;
  }
  if (total != where.length) return {};
  return out;
}

}  // namespace swrdma::agent
