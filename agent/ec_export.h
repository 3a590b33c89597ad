// One erasure-coded volume as the agent serves it (issue 16): the shard files this server holds,
// mapped read-only under the fault guard, the sorted `.ecx` mapped for binary search, and the
// deletions of `.ecj` (re-read at every scan: the volume server appends to it when a needle of an
// EC volume is deleted).
//
// Served through checked reads only, for now: the agent locates a needle's record in the data
// shards as weed's LocateData does, copies its pieces from the local shard files into one reply
// and the client verifies it as any needle. A piece in a data shard not held here is rebuilt
// from parity when this server holds at least `data_shards` shards of the volume (as the volume
// server does for a lost shard: Reed-Solomon with weed's matrix, volume/ec_codec.h); otherwise
// the record is refused (unknown volume here, naming the shard) and the cluster client asks the
// next holder the master lists, or, when none holds it whole, asks every holder for the pieces
// it holds (LocalPieces, protocol/read_messages.h EcPieces) and assembles the record itself.
// With a verbs device (agent/verbs_exporter.h) every local shard file is also registered
// REMOTE_READ only, within the pin budget like a `.dat` (all of a volume's shards or none): a
// lookup of a needle whose pieces all lie in registered shards answers them (shard, offset,
// length: LookupResult::ec_intervals) and the client reads them one-sidedly from the shards'
// regions into one buffer, then verifies
// the record as any. Pieces rebuilt from parity or held elsewhere stay checked reads.
//
// An EcExport is immutable but for its deletion set: new shard files, a new `.ecx` or a vanished
// shard make a new export (a new generation); the old one lives while readers hold it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "protocol/file_id.h"
#include "protocol/messages.h"
#include "protocol/needle.h"
#include "protocol/read_messages.h"
#include "protocol/status.h"
#include "rdma/mapped_file.h"
#include "rdma/pin_budget.h"
#include "rdma/registration.h"
#include "volume/ec_codec.h"
#include "volume/ec_volume.h"

namespace swrdma::agent {

// Where one needle's record lies in an EC volume.
struct EcLocated {
  LookupStatus status = LookupStatus::kNotFound;
  std::string error;  // for anything but kOk
  uint64_t dat_offset = 0;
  uint64_t length = 0;  // record length with padding
  uint32_t size = 0;    // needle size from the .ecx
  std::vector<ec::ShardInterval> intervals;
  std::vector<uint32_t> missing_shards;  // shards of `intervals` not held here (sorted, unique)
  // Shards of `intervals` not held here but rebuilt from the local ones (then `missing_shards`
  // is empty): the record is served, slower.
  std::vector<uint32_t> rebuilt_shards;
};

// What parity reconstruction did in this process (every EcExport): /metrics.
struct EcRebuildTotals {
  uint64_t pieces = 0;  // record pieces rebuilt
  uint64_t bytes = 0;   // bytes of them
  uint64_t failures = 0;
};
EcRebuildTotals EcRebuildTotalsNow();

// How an EC export's shards are registered for one-sided reads; the same rules as a `.dat`'s
// (agent/exported_volume.h ExportOptions).
struct EcRemoteOptions {
  const rdma::Registrar* registrar = nullptr;  // null: checked reads only
  rdma::PinBudget* pin_budget = nullptr;       // what the registrations may pin (null: no limit)
  // The kernel pins only writable shared mappings (rdma/verbs/file_export.h, export mode
  // map-writable): shards are mapped O_RDWR and never written; the registration stays
  // REMOTE_READ only.
  bool writable_mapping = false;
};

class EcExport {
 public:
  // Maps every shard file and the `.ecx` and reads the `.ecj`. kCorruption naming the file when
  // the `.vif` cannot be parsed or the shard sizes disagree. With `remote.registrar`, registers
  // the shards too; a refusal (pin budget, device) is no error: remote_note() says why, and
  // every needle is read checked.
  static Result<std::shared_ptr<const EcExport>> Open(const ec::EcVolumeFiles& files,
                                                      uint64_t generation,
                                                      OffsetWidth fallback_width,
                                                      const EcRemoteOptions& remote = {});

  uint32_t volume_id() const { return files_.volume_id; }
  const ec::EcVolumeFiles& files() const { return files_; }
  uint64_t generation() const { return generation_; }
  NeedleVersion version() const { return static_cast<NeedleVersion>(info_.version); }
  const ec::EcVolumeInfo& info() const { return info_; }
  const ec::Layout& layout() const { return layout_; }
  std::vector<uint32_t> local_shards() const;
  uint64_t shard_size(uint32_t shard) const {  // mapped bytes of a local shard, 0 if not here
    return shard < shards_.size() && shards_[shard] ? shards_[shard]->size() : 0;
  }
  uint64_t ecx_entries() const;
  size_t deleted_since_encoding() const;

  // True when `files` names the same files as this export (same shard set, same `.ecx` and
  // shard inodes and sizes): the scan keeps serving this export.
  bool SameFiles(const ec::EcVolumeFiles& files) const;
  // Reads the `.ecj` entries appended since the last call. The number of new deletions.
  Result<size_t> RefreshDeletions() const;

  // The record of `fid`: kNotFound (absent, or outside the shards), kDeleted (tombstone in the
  // `.ecx` or listed in the `.ecj`), or kOk with its intervals (the cookie is not checked here:
  // the header may lie in a shard held elsewhere; Assemble's caller checks it).
  EcLocated Locate(const FileId& fid) const;
  // Copies the first out.size() (<= where.length) bytes of a located record from the local
  // shards into `out`, rebuilding the pieces of `where.rebuilt_shards`. kUnavailable naming the
  // shards when a piece needed is not held here and cannot be rebuilt.
  Status Assemble(const EcLocated& where, std::span<uint8_t> out) const;
  // The parts of a located record held here (rebuilt ones included), merged where adjacent in
  // the record, and their bytes in that order. kUnavailable when no piece is held here;
  // kNotFound when a shard mapping is shorter than a piece (retry after the next scan).
  struct Pieces {
    std::vector<EcPiece> pieces;
    std::vector<uint8_t> bytes;
  };
  Result<Pieces> LocalPieces(const EcLocated& where) const;
  // True when the first `n` bytes of the record lie in shards held (or rebuilt) here.
  bool HoldsPrefix(const EcLocated& where, uint64_t n) const;
  // Up to `count` distinct random live needles whose records this server holds whole, as fids
  // (cookies read from their headers), in random order; `seed` makes it repeatable.
  std::vector<std::string> SampleLive(size_t count, uint64_t seed) const;
  // Why a located record cannot be served here: the shards it needs that this server lacks.
  std::string MissingShardsMessage(const EcLocated& where) const;
  // True once if a read of a shard mapping faulted (a shard truncated under us): reopen.
  bool TakeFaulted() const;
  // True when this server holds enough shards to rebuild the others.
  bool can_rebuild() const { return codec_.has_value(); }

  // One-sided reads (verbs). True when a registrar was given (registered or not).
  bool remote() const { return remote_asked_; }
  // The registered shards: what /v1/volumes/<vid> hands out (empty when none).
  std::vector<EcShardRegion> remote_regions() const;
  uint64_t remote_registered_bytes() const;
  // Shard bytes held here but not registered (read checked); 0 without a registrar.
  uint64_t remote_unregistered_bytes() const;
  // Why the shards are not registered (empty when they are, or none was asked for).
  const std::string& remote_note() const { return remote_note_; }
  // The intervals of a located record (shard, offset, length), in record order, when every
  // piece lies in a registered local shard (none rebuilt, none elsewhere) and there are at most
  // kMaxEcIntervals: a client reads each from the shard's region; else empty (read checked).
  std::vector<EcInterval> RemoteIntervals(const EcLocated& where) const;

 private:
  struct FileStamp {
    uint64_t inode = 0, size = 0;
    friend bool operator==(const FileStamp&, const FileStamp&) = default;
  };
  EcExport() = default;
  // Bytes [shard_offset, shard_offset + out.size()) of shard `shard` (not held here), from the
  // same range of `data_shards` local shards.
  Status Rebuild(uint32_t shard, uint64_t shard_offset, std::span<uint8_t> out) const;

  ec::EcVolumeFiles files_;
  uint64_t generation_ = 0;
  ec::EcVolumeInfo info_;
  ec::Layout layout_;
  std::optional<rdma::MappedFile> ecx_;
  FileStamp ecx_stamp_;
  std::vector<std::optional<rdma::MappedFile>> shards_;  // by shard id; empty when not here
  std::vector<FileStamp> shard_stamps_;
  // Set when at least data_shards shards are here and some of data + parity are not.
  std::optional<ec::ReedSolomonCodec> codec_;
  // Declared after shards_ (destroyed first): the registrations go before the mappings, then
  // their pin reservations.
  struct ShardRemote {
    rdma::PinBudget::Reservation pinned;  // given back after the registration goes
    std::unique_ptr<rdma::Registration> registration;
    uint64_t address = 0;
    uint64_t length = 0;
    std::vector<uint8_t> rkey;
  };
  // Registers every local shard or none (remote_note_ says why not).
  void RegisterShards(const EcRemoteOptions& remote);
  bool remote_asked_ = false;
  std::vector<std::optional<ShardRemote>> remote_;  // by shard id; empty when not registered
  std::string remote_note_;
  mutable std::mutex deleted_mu_;
  mutable std::unordered_set<uint64_t> deleted_;  // guarded by deleted_mu_
  mutable uint64_t ecj_consumed_ = 0;             // guarded by deleted_mu_
};

// The ok answer of a lookup: the record's length and size, "ec" set, no address; its intervals
// when they all lie in registered shards (EcExport::RemoteIntervals), else read it checked.
LookupResult EcLookupAnswer(std::string_view fid, const EcExport& e, const EcLocated& where);

}  // namespace swrdma::agent
