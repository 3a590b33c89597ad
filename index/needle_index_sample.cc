// NeedleIndex::SampleLive: random live needles of one volume (for `swrdma bench` through the
// agent's /v1/volumes/<vid>/sample). Separate from the lookup path on purpose: it iterates.
#include <algorithm>
#include <random>
#include <unordered_set>

#include <fmt/format.h>

#include "index/needle_index.h"
#include "index/needle_index_internal.h"

namespace swrdma {

using namespace index_internal;

namespace {

// A seek lands on a needle id; it walks at most this many entries (tombstones, the volume key)
// looking for a live needle before the attempt counts as wasted.
constexpr int kMaxStepsPerSeek = 64;
// Seeks per wanted needle before giving up on a volume whose live needles are few or clustered.
constexpr size_t kSeeksPerNeedle = 4;

uint64_t NeedleIdOf(const rocksdb::Slice& key) {
  return LoadBe64(U8(key.data()) + kVolumeKeySize);
}

}  // namespace

Result<std::vector<SampledNeedle>> NeedleIndex::SampleLive(uint32_t volume_id,
                                                           const SampleOptions& options) const {
  const std::string ctx = fmt::format("sampling volume {}", volume_id);
  std::vector<SampledNeedle> out;
  // One snapshot for the state and the entries.
  const index_internal::ScopedSnapshot snapshot(h_->db.get());
  rocksdb::ReadOptions ro = snapshot.read_options();

  const VolumeKey vkey = EncodeVolumeKey(volume_id);
  rocksdb::PinnableSlice state_bytes;
  rocksdb::Status s = h_->db->Get(ro, h_->needles, AsSlice(vkey), &state_bytes);
  if (s.IsNotFound()) {
    return Error(Code::kUnknownVolume, fmt::format("volume {} is not indexed", volume_id));
  }
  if (!s.ok()) return Error(ToStatus(s, ctx));
  SWRDMA_ASSIGN_OR_RETURN(VolumeState state, DecodeVolumeState(volume_id, state_bytes));
  if (options.count == 0 || state.live == 0) return out;

  // Iterate the volume's needle keys only: [vid key, next vid key).
  const std::string end = VolumeRangeEnd(volume_id);
  const rocksdb::Slice lower = AsSlice(vkey), upper(end);
  ro.iterate_lower_bound = &lower;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(h_->db->NewIterator(ro, h_->needles));
  std::mt19937_64 rng(options.seed);

  const uint64_t entries = state.live + state.deleted;
  if (entries <= options.full_scan_entries || state.live <= options.count) {
    // Reservoir sampling (Algorithm R): every live needle ends up in `out` with equal chance.
    uint64_t seen = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != kNeedleKeySize || IsTombstoneValue(it->value())) continue;
      SWRDMA_ASSIGN_OR_RETURN(NeedleLookup found, DecodeNeedleValue(it->value()));
      SampledNeedle n{NeedleIdOf(it->key()), found.location};
      ++seen;
      if (out.size() < options.count) {
        out.push_back(n);
      } else if (const uint64_t j = std::uniform_int_distribution<uint64_t>(0, seen - 1)(rng);
                 j < options.count) {
        out[j] = n;
      }
    }
    if (!it->status().ok()) return Error(ToStatus(it->status(), ctx));
    std::shuffle(out.begin(), out.end(), rng);
    return out;
  }

  // Random seeks between the first and the last needle id.
  it->SeekToLast();
  if (!it->Valid() || it->key().size() != kNeedleKeySize) {
    if (!it->status().ok()) return Error(ToStatus(it->status(), ctx));
    return out;
  }
  const uint64_t hi = NeedleIdOf(it->key());
  it->SeekToFirst();
  if (it->Valid() && it->key().size() != kNeedleKeySize) it->Next();  // the volume state key
  if (!it->Valid()) {
    if (!it->status().ok()) return Error(ToStatus(it->status(), ctx));
    return out;
  }
  const uint64_t lo = NeedleIdOf(it->key());
  std::uniform_int_distribution<uint64_t> pick(lo, hi);
  std::unordered_set<uint64_t> taken;
  for (size_t attempt = 0; attempt < options.count * kSeeksPerNeedle && out.size() < options.count;
       ++attempt) {
    const NeedleKeyBytes target = EncodeNeedleKey(volume_id, pick(rng));
    it->Seek(AsSlice(target));
    bool wrapped = false;
    for (int step = 0; step < kMaxStepsPerSeek; ++step) {
      if (!it->Valid()) {
        if (wrapped || !it->status().ok()) break;
        wrapped = true;  // past the last needle: continue from the first
        it->SeekToFirst();
        continue;
      }
      if (it->key().size() == kNeedleKeySize && !IsTombstoneValue(it->value())) {
        const uint64_t id = NeedleIdOf(it->key());
        if (taken.insert(id).second) {
          SWRDMA_ASSIGN_OR_RETURN(NeedleLookup found, DecodeNeedleValue(it->value()));
          out.push_back({id, found.location});
        }
        break;
      }
      it->Next();
    }
    if (!it->status().ok()) return Error(ToStatus(it->status(), ctx));
  }
  return out;
}

}  // namespace swrdma
