// The agent's exported volumes: discovery + index sync + export, and the lookups served from them.
//
// Readers (HTTP handlers on any thread) take an immutable snapshot with one atomic load; the
// scanner builds a new snapshot and swaps it in. An ExportedVolume dropped from the snapshot stays
// mapped until the last reader holding it lets go.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/ec_export.h"
#include "agent/exported_volume.h"
#include "agent/hot_first.h"
#include "index/needle_index.h"
#include "protocol/file_id.h"
#include "protocol/messages.h"
#include "rdma/ucx/ucx_context.h"

namespace swrdma::agent {

struct VolumeEntry {
  std::shared_ptr<const ExportedVolume> exported;
  VolumeState state;  // index state at export time (counts, revision)
};

struct VolumeMap {
  std::map<uint32_t, VolumeEntry> volumes;
  // Erasure-coded volumes (agent/ec_export.h): a volume id is in one map or the other.
  std::map<uint32_t, std::shared_ptr<const EcExport>> ec;
};

struct VolumeSetOptions {
  std::vector<std::filesystem::path> dirs;
  ExportMode export_mode = ExportMode::kMap;
  uint64_t growth_reserve = uint64_t{1} << 30;  // see ExportOptions
  // Registrations a NIC enforces (verbs), made beside UCX's for every export; see ExportOptions.
  const rdma::Registrar* remote = nullptr;
  rdma::PinBudget* pin_budget = nullptr;  // what `remote` may pin; see ExportOptions
  OffsetWidth fallback_offset_width = OffsetWidth::k4;
  // A replaced or removed export stays mapped and registered this long: clients that looked a
  // needle up just before may still be reading it with the old rkey.
  std::chrono::milliseconds retire_grace = std::chrono::seconds(10);
  // After the grace period a retired export's pages are replaced by zeros (the file is released)
  // and the address range stays reserved this long, so a client with a stale cached address reads
  // zeros (which fail its checks) instead of faulting the agent.
  std::chrono::milliseconds tombstone_horizon = std::chrono::minutes(10);
  // Which volumes the pin budget registers as the load moves (agent/hot_first.h).
  HotFirstOptions hot_first;
};

struct ScanReport {
  size_t volumes = 0;
  size_t exported = 0;                // newly (re-)exported in this scan
  size_t grown = 0;                   // growing files served more of, in place
  size_t removed = 0;                 // no longer on disk
  size_t failed = 0;                  // could not be indexed or exported (logged, skipped)
  size_t retired = 0;                 // old exports still mapped for their grace period
  size_t ec_volumes = 0;              // erasure-coded volumes served (agent/ec_export.h)
  std::vector<std::string> messages;  // warnings and failures, one line each
  // For metrics. Re-exports of volumes already served (a new generation), by reason:
  // "index_rebuilt" (vacuum, replaced file), "outgrown" (past the registered range),
  // "faulted" (a read faulted), "file_moved".
  std::map<std::string, size_t> generation_changes;
  std::vector<double> registration_seconds;  // ExportedVolume::Create time of each export
  uint64_t idx_entries_applied = 0;          // `.idx` entries replayed into the index
  // Seconds from the first file event that caused this scan to the scan's end (set by
  // VolumeWatcher); negative for periodic and start-up scans.
  double change_to_applied_seconds = -1;
};

using ScanProgressFn = std::function<void(std::string_view what)>;

// A found record, resolved to the exported bytes it lives in.
struct ResolvedNeedle {
  LookupResult result;                             // wire answer
  std::shared_ptr<const ExportedVolume> exported;  // set when result.status == kOk (not EC)
  uint64_t offset = 0;                             // record offset in the file
  std::shared_ptr<const EcExport> ec;              // set when kOk in an EC volume
  EcLocated ec_where;                              // with `ec`: where its pieces lie
  NeedleVersion version = NeedleVersion::kV3;      // of the volume, when kOk
  // kUnknownVolume in an EC volume because some of the record's shards are held elsewhere: the
  // export (for its LocalPieces) with `ec_where` and `version` set, and whether the cookie was
  // checked here (the record's header lies in shards held here).
  std::shared_ptr<const EcExport> ec_partial;
  bool ec_cookie_checked = false;
};

// A copy of a resolved (kOk) record's bytes, from the export's mapping or assembled from the EC
// shards: a stable copy whatever the volume server does meanwhile.
Result<std::vector<uint8_t>> CopyRecord(const ResolvedNeedle& found);

class VolumeSet {
 public:
  VolumeSet(NeedleIndex& index, const rdma::UcxContext& context, VolumeSetOptions options);
  const NeedleIndex& index() const { return index_; }

  // Discovers the volumes in every directory, syncs the index, exports new or changed ones and
  // drops vanished ones. One failing volume is reported and skipped; the others go on.
  ScanReport Scan(const ScanProgressFn& progress = {});

  std::shared_ptr<const VolumeMap> snapshot() const { return map_.load(); }

  // Resolves one fid string (bad_fid / unknown_volume / not_found / deleted / ok).
  ResolvedNeedle Resolve(std::string_view fid) const;
  // The same against a snapshot the caller holds (one per batch of fids, not one per fid).
  ResolvedNeedle Resolve(std::string_view fid, const VolumeMap& map) const;
  // Batched: one index MultiGet for all well-formed fids.
  LookupResponse Lookup(const LookupRequest& request) const;

  // Up to `count` distinct random live fids of one exported volume (NeedleIndex::SampleLive),
  // each checked against the current export, its cookie read from the exported header (the index
  // holds none). kUnknownVolume if the volume is not exported.
  Result<SampleResponse> Sample(uint32_t volume_id, size_t count, uint64_t seed) const;

  const VolumeSetOptions& options() const { return options_; }
  // Swaps made to register hotter volumes first within the pin budget.
  const HotFirstPinning& hot_first() const { return hot_first_; }

 private:
  ResolvedNeedle Finish(std::string_view fid, const FileId& parsed, const VolumeMap& map,
                        const Result<NeedleLookup>& found) const;
  // Discovers the EC volumes in every directory and (re-)opens what changed into `next`.
  void ScanEc(const VolumeMap& old_map, VolumeMap& next, ScanReport& report);

  NeedleIndex& index_;
  const rdma::UcxContext& context_;
  VolumeSetOptions options_;
  std::mutex scan_mu_;
  std::atomic<std::shared_ptr<const VolumeMap>> map_;
  std::atomic<uint64_t> next_generation_;
  // Guarded by scan_mu_.
  std::vector<
      std::pair<std::chrono::steady_clock::time_point, std::shared_ptr<const ExportedVolume>>>
      retired_;
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::shared_ptr<const EcExport>>>
      retired_ec_;
  // EC volumes whose files were still changing at the last scan: what they looked like then
  // (VolumeSet::ScanEc opens one only once its files stop changing).
  std::map<uint32_t, std::string> ec_settling_;
  HotFirstPinning hot_first_;  // Rebalance under scan_mu_
};

// Descriptor of an exported volume for /v1/volumes.
VolumeDescriptor Describe(const VolumeEntry& entry);
// Of an EC volume: no regions (checked reads only), the shards held here.
VolumeDescriptor Describe(const EcExport& e);

}  // namespace swrdma::agent
