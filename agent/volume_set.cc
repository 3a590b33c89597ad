#include "agent/volume_set.h"

#include <sys/stat.h>

#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocol/byte_order.h"
#include "protocol/file_id.h"
#include "protocol/needle.h"
#include "rdma/fault_guard.h"

namespace swrdma::agent {

namespace {

// Export generations start from the wall clock so that an agent restart never reuses one a
// client may still hold.
uint64_t InitialGeneration() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

LookupResult Answer(std::string_view fid, LookupStatus status, uint32_t vid, std::string error) {
  LookupResult r;
  r.fid = std::string(fid);
  r.status = status;
  r.volume_id = vid;
  r.error = std::move(error);
  return r;
}

}  // namespace

VolumeSet::VolumeSet(NeedleIndex& index, const rdma::UcxContext& context, VolumeSetOptions options)
    : index_(index),
      context_(context),
      options_(std::move(options)),
      map_(std::make_shared<const VolumeMap>()),
      next_generation_(InitialGeneration()),
      hot_first_(options_.pin_budget, options_.remote, options_.hot_first) {}

ScanReport VolumeSet::Scan(const ScanProgressFn& progress) {
  std::lock_guard lock(scan_mu_);
  ScanReport report;
  auto old_map = map_.load();
  auto next = std::make_shared<VolumeMap>();

  std::vector<VolumeFiles> found;
  for (const auto& dir : options_.dirs) {
    auto d = DiscoverVolumes(dir);
    if (!d) {
      report.messages.push_back(d.error().ToString());
      continue;
    }
    for (auto& w : d->warnings)
      report.messages.push_back(fmt::format("{}: {}", dir.string(), w));
    for (auto& v : d->volumes)
      found.push_back(std::move(v));
  }

  for (const auto& files : found) {
    if (next->volumes.contains(files.volume_id)) {
      report.messages.push_back(fmt::format(
          "volume {} found twice; serving {} and ignoring {}", files.volume_id,
          next->volumes[files.volume_id].exported->files().dat.string(), files.dat.string()));
      continue;
    }
    ++report.volumes;
    // weed's vacuum commit writes <base>.cpc, renames .cpd -> .dat and .cpx -> .idx one after
    // the other, then removes the marker: meanwhile .dat and .idx may be of different
    // generations, and pairing them would index the new file with the old offsets (issue 15,
    // 14). Keep serving the previous export (its mapping holds the old file) until it is gone.
    const auto cpc = std::filesystem::path(files.dat).replace_extension(".cpc");
    if (std::error_code cpc_ec; std::filesystem::exists(cpc, cpc_ec)) {
      auto old = old_map->volumes.find(files.volume_id);
      report.messages.push_back(fmt::format(
          "volume {}: vacuum commit in progress ({}); {}", files.volume_id, cpc.string(),
          old != old_map->volumes.end() ? "serving the previous export until it ends"
                                        : "exporting it once it ends"));
      if (old != old_map->volumes.end()) next->volumes[files.volume_id] = old->second;
      continue;
    }
    if (progress)
      progress(fmt::format("indexing volume {} ({})", files.volume_id, files.dat.string()));
    SyncOptions so;
    so.fallback_offset_width = options_.fallback_offset_width;
    auto sync =
        index_.SyncVolume(files, so, [&](std::string_view phase, uint64_t done, uint64_t total) {
          if (progress && total > 0) {
            progress(
                fmt::format("volume {}: {} {}/{} entries", files.volume_id, phase, done, total));
          }
        });
    if (!sync) {
      ++report.failed;
      report.messages.push_back(
          sync.error().WithContext(fmt::format("indexing volume {}", files.volume_id)).ToString());
      continue;
    }
    report.idx_entries_applied += sync->entries_applied;
    if (sync->unwrapped_entries > 0) {
      report.messages.push_back(fmt::format(
          "volume {}: {} .idx entries point past 32 GiB (4-byte offsets wrap there; found where "
          "the volume server's reads find them)",
          files.volume_id, sync->unwrapped_entries));
    }
    // Re-export when the file or its index changed; otherwise keep serving the same export.
    auto old = old_map->volumes.find(files.volume_id);
    std::string change_reason;  // set when an export of this volume is replaced
    // Keep serving the same export while it is the same file (same index generation) that still
    // fits the registered range and never faulted; a grown file is then served in place.
    if (old != old_map->volumes.end()) {
      const auto& e = old->second.exported;
      const bool faulted = e->TakeFaulted();
      if (faulted) {
        report.messages.push_back(fmt::format(
            "volume {}: a read faulted (file truncated under the export?); exporting it again",
            files.volume_id));
      }
      if (!faulted && e->index_generation() == sync->state.generation &&
          e->files().dat == files.dat && e->CanServe(sync->state.dat_size)) {
        if (sync->state.dat_size != e->size()) ++report.grown;
        if (Status grown = e->SetServedSize(sync->state.dat_size); !grown.ok()) {
          report.messages.push_back(grown.ToString());  // served as before; the next scan retries
        }
        next->volumes[files.volume_id] = VolumeEntry{e, sync->state};
        continue;
      }
      change_reason = faulted                                           ? "faulted"
                      : e->index_generation() != sync->state.generation ? "index_rebuilt"
                      : e->files().dat != files.dat                     ? "file_moved"
                                                                        : "outgrown";
    }
    ExportOptions eo;
    eo.mode = options_.export_mode;
    eo.growth_reserve = options_.growth_reserve;
    eo.remote = options_.remote;
    eo.pin_budget = options_.pin_budget;
    const auto export_start = std::chrono::steady_clock::now();
    auto exp = ExportedVolume::Create(context_, files, sync->state.generation,
                                      next_generation_.fetch_add(1), eo);
    report.registration_seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - export_start).count());
    if (!exp) {
      ++report.failed;
      report.messages.push_back(exp.error().ToString());
      continue;
    }
    ++report.exported;
    if (!change_reason.empty()) ++report.generation_changes[change_reason];
    if (!(*exp)->note().empty()) {
      report.messages.push_back(fmt::format("volume {}: {}", files.volume_id, (*exp)->note()));
    }
    next->volumes[files.volume_id] = VolumeEntry{std::move(*exp), sync->state};
  }
  ScanEc(*old_map, *next, report);
  for (const auto& [vid, entry] : old_map->volumes) {
    if (!next->volumes.contains(vid)) {
      ++report.removed;
      report.messages.push_back(
          fmt::format("volume {} is gone from disk; no longer exported", vid));
      index_.DropVolume(vid).IgnoreError();
    }
  }
  // Retire what the new map no longer serves (replaced or removed), free what outlived its grace.
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [vid, entry] : old_map->volumes) {
    auto it = next->volumes.find(vid);
    if (it == next->volumes.end() || it->second.exported != entry.exported) {
      retired_.emplace_back(now, entry.exported);
    }
  }
  for (const auto& [vid, e] : old_map->ec) {
    auto it = next->ec.find(vid);
    if (it == next->ec.end()) {
      ++report.removed;
      report.messages.push_back(
          fmt::format("EC volume {} is gone from disk; no longer served", vid));
    }
    if (it == next->ec.end() || it->second != e) retired_ec_.emplace_back(now, e);
  }
  std::erase_if(retired_, [&](const auto& r) { return now - r.first >= options_.retire_grace; });
  std::erase_if(retired_ec_, [&](const auto& r) { return now - r.first >= options_.retire_grace; });
  report.retired = retired_.size();
  rdma::FaultGuard::ReleaseTombstones(options_.tombstone_horizon);
  {
    std::vector<std::pair<uint32_t, const ExportedVolume*>> served;
    served.reserve(next->volumes.size());
    for (const auto& [vid, entry] : next->volumes)
      served.emplace_back(vid, entry.exported.get());
    hot_first_.Rebalance(served, now, report.messages);
  }
  map_.store(std::move(next));
  return report;
}

void VolumeSet::ScanEc(const VolumeMap& old_map, VolumeMap& next, ScanReport& report) {
  // Shards of one volume may sit on several disks of this server (weed's multi-disk layout):
  // their shard lists are merged; the first .ecx found serves the index.
  std::map<uint32_t, ec::EcVolumeFiles> found;
  std::vector<ec::EcVolumeFiles> without_ecx;
  for (const auto& dir : options_.dirs) {
    auto d = ec::DiscoverEcVolumes(dir);
    if (!d) {
      report.messages.push_back(d.error().ToString());
      continue;
    }
    for (auto& w : d->warnings)
      report.messages.push_back(fmt::format("{}: {}", dir.string(), w));
    for (auto& v : d->volumes) {
      auto [it, inserted] = found.emplace(v.volume_id, v);
      if (!inserted) it->second.shards.merge(v.shards);
    }
    for (auto& v : d->without_ecx)
      without_ecx.push_back(std::move(v));
  }
  for (auto& v : without_ecx) {
    if (auto it = found.find(v.volume_id); it != found.end()) {
      it->second.shards.merge(v.shards);
      continue;
    }
    report.messages.push_back(fmt::format(
        "EC volume {}: {} shard file(s) (e.g. {}) but no .ecx in any --dir; not "
        "served (give the agent the directory holding {}.ecx)",
        v.volume_id, v.shards.size(), v.shards.begin()->second.string(), v.base_name()));
  }
  // weed writes an EC volume's .ecx first, then the shards row by row, then its .vif: opened in
  // between, an export would map shards that are still being written and serve zeros for the
  // rows not there yet (seen in seaweedfs_e2e). A volume whose files are new or changed is opened
  // once its .vif is at least as new as every shard (weed's last step), or else once two scans
  // in a row saw the same files (sizes, inodes, times).
  std::map<uint32_t, std::string> settling;
  const auto settled = [&](uint32_t vid, const ec::EcVolumeFiles& files) {
    std::string stamp;
    int64_t newest_shard = 0, vif_time = -1;
    auto add = [&](const std::filesystem::path& p, bool shard) {
      struct stat st{};
      if (::stat(p.c_str(), &st) != 0) {
        stamp += fmt::format("{}:missing;", p.string());
        return;
      }
      const int64_t ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
      if (shard) newest_shard = std::max(newest_shard, ns);
      stamp += fmt::format("{}:{}:{}:{};", p.string(), st.st_ino, st.st_size, ns);
    };
    add(files.ecx, true);
    for (const auto& [shard, path] : files.shards)
      add(path, true);
    if (files.vif) {
      struct stat st{};
      if (::stat(files.vif->c_str(), &st) == 0) {
        vif_time = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
      }
    }
    if (vif_time >= newest_shard) return true;
    auto it = ec_settling_.find(vid);
    if (it != ec_settling_.end() && it->second == stamp) return true;
    settling[vid] = std::move(stamp);
    return false;
  };
  for (auto& [vid, files] : found) {
    if (next.volumes.contains(vid)) {
      report.messages.push_back(
          fmt::format("volume {}: both a .dat ({}) and EC shards ({}); serving the .dat", vid,
                      next.volumes[vid].exported->files().dat.string(), files.ecx.string()));
      continue;
    }
    ++report.ec_volumes;
    auto old = old_map.ec.find(vid);
    if (old != old_map.ec.end() && !old->second->TakeFaulted() && old->second->SameFiles(files)) {
      if (auto added = old->second->RefreshDeletions(); !added) {
        report.messages.push_back(added.error().ToString());
      }
      next.ec[vid] = old->second;
      continue;
    }
    if (!settled(vid, files)) {
      report.messages.push_back(fmt::format(
          "EC volume {}: its files are still being written; served once they settle", vid));
      if (old != old_map.ec.end()) next.ec[vid] = old->second;  // as before, meanwhile
      continue;
    }
    EcRemoteOptions remote;
    remote.registrar = options_.remote;
    remote.pin_budget = options_.pin_budget;
    remote.writable_mapping = options_.export_mode == ExportMode::kMapWritable;
    auto opened = EcExport::Open(files, next_generation_.fetch_add(1),
                                 options_.fallback_offset_width, remote);
    if (!opened) {
      ++report.failed;
      report.messages.push_back(
          opened.error().WithContext(fmt::format("EC volume {}", vid)).ToString());
      continue;
    }
    ++report.exported;
    if (old != old_map.ec.end()) ++report.generation_changes["ec_shards_changed"];
    if (!(*opened)->remote_note().empty()) report.messages.push_back((*opened)->remote_note());
    next.ec[vid] = std::move(*opened);
  }
  ec_settling_ = std::move(settling);
}

namespace {

ResolvedNeedle FinishEc(std::string_view fid, const FileId& parsed,
                        const std::shared_ptr<const EcExport>& e) {
  ResolvedNeedle out;
  EcLocated where = e->Locate(parsed);
  if (where.status != LookupStatus::kOk) {
    out.result = Answer(fid, where.status, parsed.volume_id, std::move(where.error));
    return out;
  }
  // The cookie, as for a .dat, when the header lies in local shards: a wrong one is not found
  // here whatever else the record needs.
  const bool header_here = where.length >= 16 && e->HoldsPrefix(where, 16);
  if (header_here) {
    uint8_t header[16];
    EcLocated head = where;
    head.missing_shards.clear();  // the header's own shards are here (HoldsPrefix)
    if (Status s = e->Assemble(head, std::span(header, 16)); !s.ok()) {
      out.result = Answer(fid, LookupStatus::kNotFound, parsed.volume_id, s.message());
      return out;
    }
    if (LoadBe64(header + 4) != parsed.needle_id || LoadBe32(header) != parsed.cookie) {
      out.result = Answer(fid, LookupStatus::kNotFound, parsed.volume_id, "cookie mismatch");
      return out;
    }
  } else if (where.missing_shards.empty()) {
    out.result =
        Answer(fid, LookupStatus::kNotFound, parsed.volume_id,
               where.length < 16 ? "EC record shorter than a needle header" : "cookie mismatch");
    return out;
  }
  if (!where.missing_shards.empty()) {
    // Not whole here: the cluster client asks the next holder the master lists, or collects
    // the pieces of every holder (checked reads with kReadRequestEcPieces).
    out.result =
        Answer(fid, LookupStatus::kUnknownVolume, parsed.volume_id, e->MissingShardsMessage(where));
    out.version = e->version();
    out.ec_partial = e;
    out.ec_where = std::move(where);
    out.ec_cookie_checked = header_here;
    return out;
  }
  out.result = EcLookupAnswer(fid, *e, where);
  out.version = e->version();
  out.ec = e;
  out.ec_where = std::move(where);
  return out;
}

}  // namespace

ResolvedNeedle VolumeSet::Finish(std::string_view fid, const FileId& parsed, const VolumeMap& map,
                                 const Result<NeedleLookup>& found) const {
  ResolvedNeedle out;
  const uint32_t vid = parsed.volume_id;
  auto it = map.volumes.find(vid);
  if (it == map.volumes.end()) {
    if (auto e = map.ec.find(vid); e != map.ec.end()) return FinishEc(fid, parsed, e->second);
    out.result = Answer(fid, LookupStatus::kUnknownVolume, vid,
                        fmt::format("volume {} is not exported by this agent", vid));
    return out;
  }
  if (!found) {
    out.result = Answer(fid, LookupStatus::kNotFound, vid,
                        found.error().WithContext("index lookup failed").ToString());
    return out;
  }
  switch (found->outcome) {
    case LookupOutcome::kUnknownVolume:
      out.result = Answer(fid, LookupStatus::kUnknownVolume, vid,
                          fmt::format("volume {} is not indexed", vid));
      return out;
    case LookupOutcome::kUnknownNeedle:
      out.result = Answer(fid, LookupStatus::kNotFound, vid, "no such needle");
      return out;
    case LookupOutcome::kDeleted:
      out.result = Answer(fid, LookupStatus::kDeleted, vid, "needle was deleted");
      return out;
    case LookupOutcome::kFound:
      break;
  }
  const auto& exp = it->second.exported;
  const NeedleLocation& loc = found->location;
  if (loc.generation != exp->index_generation()) {
    // The index was rebuilt (vacuum) and the new file is not exported yet: the offset belongs to
    // a file we do not serve. The client retries after the next scan.
    out.result = Answer(fid, LookupStatus::kNotFound, vid,
                        "volume is being re-exported after a rebuild; retry shortly");
    return out;
  }
  const uint64_t length = NeedleRecordLength(loc.size, exp->version());
  if (loc.offset < exp->superblock().data_start() || loc.offset + length > exp->size()) {
    out.result = Answer(fid, LookupStatus::kNotFound, vid,
                        fmt::format("record at {}+{} lies outside the exported {} bytes; retry "
                                    "after the next scan",
                                    loc.offset, length, exp->size()));
    return out;
  }
  // The volume server answers a wrong cookie with 404; check it here so a guessed fid costs no
  // RDMA read. The header is in exported (mapped) memory.
  const uint8_t* header = exp->bytes().data() + loc.offset;
  if (LoadBe64(header + 4) != parsed.needle_id || LoadBe32(header) != parsed.cookie) {
    out.result = Answer(fid, LookupStatus::kNotFound, vid, "cookie mismatch");
    return out;
  }
  out.result.fid = std::string(fid);
  out.result.status = LookupStatus::kOk;
  out.result.volume_id = vid;
  out.result.generation = exp->generation();
  out.result.address = exp->base_address() + loc.offset;
  out.result.length = length;
  out.result.size = loc.size;
  // Bytes past what the pin budget let the agent register: verbs clients read them checked.
  out.result.checked = exp->remote() && !exp->RemotelyReadable(loc.offset, length);
  if (exp->remote()) exp->NoteRead();  // the pin budget's heat (agent/hot_first.h)
  out.exported = exp;
  out.offset = loc.offset;
  out.version = exp->version();
  return out;
}

ResolvedNeedle VolumeSet::Resolve(std::string_view fid) const {
  auto parsed = ParseFileId(fid);
  if (!parsed) {
    ResolvedNeedle out;
    out.result = Answer(fid, LookupStatus::kBadFid, 0, parsed.error().message());
    return out;
  }
  auto map = map_.load();
  return Finish(fid, *parsed, *map, index_.Lookup(parsed->volume_id, parsed->needle_id));
}

ResolvedNeedle VolumeSet::Resolve(std::string_view fid, const VolumeMap& map) const {
  auto parsed = ParseFileId(fid);
  if (!parsed) {
    ResolvedNeedle out;
    out.result = Answer(fid, LookupStatus::kBadFid, 0, parsed.error().message());
    return out;
  }
  return Finish(fid, *parsed, map, index_.Lookup(parsed->volume_id, parsed->needle_id));
}

LookupResponse VolumeSet::Lookup(const LookupRequest& request) const {
  LookupResponse resp;
  resp.results.resize(request.fids.size());
  auto map = map_.load();
  std::vector<NeedleKey> keys;
  std::vector<std::pair<size_t, FileId>> pending;
  for (size_t i = 0; i < request.fids.size(); ++i) {
    auto parsed = ParseFileId(request.fids[i]);
    if (!parsed) {
      resp.results[i] = Answer(request.fids[i], LookupStatus::kBadFid, 0, parsed.error().message());
      continue;
    }
    keys.push_back({parsed->volume_id, parsed->needle_id});
    pending.emplace_back(i, *parsed);
  }
  auto many = index_.LookupMany(keys);
  for (size_t k = 0; k < pending.size(); ++k) {
    const auto& [i, fid] = pending[k];
    Result<NeedleLookup> one = many ? Result<NeedleLookup>((*many)[k]) : Error(many.error());
    resp.results[i] = Finish(request.fids[i], fid, *map, one).result;
  }
  return resp;
}

Result<SampleResponse> VolumeSet::Sample(uint32_t vid, size_t count, uint64_t seed) const {
  auto map = map_.load();
  auto it = map->volumes.find(vid);
  if (it == map->volumes.end()) {
    if (auto e = map->ec.find(vid); e != map->ec.end()) {
      SampleResponse out;
      out.volume_id = vid;
      out.generation = e->second->generation();
      const uint64_t entries = e->second->ecx_entries();
      const uint64_t deleted = e->second->deleted_since_encoding();
      out.live_needles = entries > deleted ? entries - deleted : 0;
      out.fids = e->second->SampleLive(count, seed);
      return out;
    }
    return Error(Code::kUnknownVolume, fmt::format("volume {} is not exported here", vid));
  }
  const ExportedVolume& exp = *it->second.exported;
  SampleOptions so;
  so.count = count;
  so.seed = seed;
  SWRDMA_ASSIGN_OR_RETURN(auto sampled, index_.SampleLive(vid, so));
  SampleResponse out;
  out.volume_id = vid;
  out.generation = exp.generation();
  out.live_needles = it->second.state.live;
  out.fids.reserve(sampled.size());
  for (const auto& s : sampled) {
    // Only what a lookup would answer ok right now (same checks as Finish); the rest is skipped.
    const NeedleLocation& loc = s.location;
    const uint64_t length = NeedleRecordLength(loc.size, exp.version());
    if (loc.generation != exp.index_generation() || loc.offset < exp.superblock().data_start() ||
        loc.offset + length > exp.size()) {
      continue;
    }
    const uint8_t* header = exp.bytes().data() + loc.offset;
    if (LoadBe64(header + 4) != s.needle_id) continue;
    out.fids.push_back(FormatFileId({vid, s.needle_id, LoadBe32(header)}));
  }
  return out;
}

Result<std::vector<uint8_t>> CopyRecord(const ResolvedNeedle& found) {
  if (found.result.status != LookupStatus::kOk) {
    return Error(Code::kInternal, "CopyRecord of a needle that was not found");
  }
  std::vector<uint8_t> record(found.result.length);
  if (found.ec) {
    SWRDMA_RETURN_IF_ERROR(found.ec->Assemble(found.ec_where, record));
    return record;
  }
  const auto src = found.exported->bytes().subspan(found.offset, found.result.length);
  std::copy(src.begin(), src.end(), record.begin());
  return record;
}

VolumeDescriptor Describe(const VolumeEntry& entry) {
  const auto& e = *entry.exported;
  VolumeDescriptor d;
  d.volume_id = e.volume_id();
  d.collection = e.files().collection;
  d.version = static_cast<uint8_t>(e.version());
  d.size = e.size();
  d.live_needles = entry.state.live;
  d.deleted_needles = entry.state.deleted;
  d.compaction_revision = e.superblock().compaction_revision;
  d.generation = e.generation();
  // With a NIC that enforces keys the regions are its registrations (what a client may read);
  // the UCX one only ever serves the agent's own sends.
  if (e.remote()) {
    d.regions = e.remote_regions();
  } else {
    d.regions.push_back(e.region_descriptor());
  }
  return d;
}

VolumeDescriptor Describe(const EcExport& e) {
  VolumeDescriptor d;
  d.volume_id = e.volume_id();
  d.collection = e.files().collection;
  d.version = static_cast<uint8_t>(e.version());
  d.size = e.info().dat_file_size;
  d.live_needles = e.ecx_entries();
  d.deleted_needles = e.deleted_since_encoding();
  d.generation = e.generation();
  d.ec = true;
  d.ec_shards = e.local_shards();
  d.ec_regions = e.remote_regions();
  return d;
}

}  // namespace swrdma::agent
