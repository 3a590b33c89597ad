#include "agent/ec_export.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "protocol/byte_order.h"

namespace swrdma::agent {
namespace {

struct Stat {
  uint64_t inode = 0, size = 0;
};

Result<Stat> StatFile(const std::filesystem::path& p) {
  struct stat st{};
  if (::stat(p.c_str(), &st) != 0) {
    return Error(Code::kIOError, fmt::format("stat {}: {}", p.string(), std::strerror(errno)));
  }
  return Stat{static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size)};
}

Result<std::string> ReadText(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return Error(Code::kIOError, fmt::format("reading {}: cannot open it", p.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::span<const uint8_t> Bytes(const rdma::MappedFile& m) {
  return {reinterpret_cast<const uint8_t*>(m.data()), static_cast<size_t>(m.size())};
}

std::atomic<uint64_t> g_rebuilt_pieces{0}, g_rebuilt_bytes{0}, g_rebuild_failures{0};

// Rebuilt in slices of this much per shard: a large record's piece never needs
// (data + parity) x its size of scratch memory.
constexpr uint64_t kRebuildSlice = 1 << 20;

}  // namespace

EcRebuildTotals EcRebuildTotalsNow() {
  return {g_rebuilt_pieces.load(std::memory_order_relaxed),
          g_rebuilt_bytes.load(std::memory_order_relaxed),
          g_rebuild_failures.load(std::memory_order_relaxed)};
}

Result<std::shared_ptr<const EcExport>> EcExport::Open(const ec::EcVolumeFiles& files,
                                                       uint64_t generation,
                                                       OffsetWidth fallback_width,
                                                       const EcRemoteOptions& remote) {
  std::shared_ptr<EcExport> e(new EcExport());
  e->files_ = files;
  e->generation_ = generation;
  std::string vif_text;
  if (files.vif) {
    SWRDMA_ASSIGN_OR_RETURN(vif_text, ReadText(*files.vif));
  }
  auto info = ec::ParseEcVolumeInfo(vif_text, fallback_width);
  if (!info) {
    return Error(info.error().WithContext(
        fmt::format("EC volume {}: {}", files.volume_id, files.vif ? files.vif->string() : "")));
  }
  e->info_ = *info;

  SWRDMA_ASSIGN_OR_RETURN(Stat ecx_stat, StatFile(files.ecx));
  e->ecx_stamp_ = {ecx_stat.inode, ecx_stat.size};
  // The .ecx is written once at encoding (deletions go to the .ecj; a rebuild rewrites tombstones
  // in place, which a shared mapping sees). Guarded: a truncated file reads as zeros, not SIGBUS.
  rdma::MapOptions mo;
  mo.guard = true;
  mo.advice = rdma::MapAdvice::kRandom;
  SWRDMA_ASSIGN_OR_RETURN(auto ecx, rdma::MappedFile::Open(files.ecx, mo));
  e->ecx_.emplace(std::move(ecx));

  e->shards_.resize(ec::kMaxShards);
  e->shard_stamps_.resize(ec::kMaxShards);
  uint64_t any_shard_size = 0;
  rdma::MapOptions shard_mo = mo;
  if (remote.registrar != nullptr && remote.writable_mapping) {
    shard_mo.mode = rdma::MapMode::kReadWrite;  // never written: see EcRemoteOptions
  }
  for (const auto& [shard, path] : files.shards) {
    if (shard >= ec::kMaxShards) continue;
    SWRDMA_ASSIGN_OR_RETURN(Stat st, StatFile(path));
    SWRDMA_ASSIGN_OR_RETURN(auto m, rdma::MappedFile::Open(path, shard_mo));
    e->shard_stamps_[shard] = {st.inode, st.size};
    e->shards_[shard].emplace(std::move(m));
    any_shard_size = std::max(any_shard_size, st.size);
  }
  e->layout_ = ec::LayoutOf(e->info_, any_shard_size);
  const uint32_t total = e->info_.data_shards + e->info_.parity_shards;
  size_t held = 0;
  for (uint32_t i = 0; i < total && i < e->shards_.size(); ++i)
    held += e->shards_[i] ? 1 : 0;
  if (held >= e->info_.data_shards && held < total) {
    auto codec = ec::ReedSolomonCodec::Create(e->info_.data_shards, e->info_.parity_shards);
    if (!codec)
      return Error(codec.error().WithContext(fmt::format("EC volume {}", files.volume_id)));
    e->codec_.emplace(std::move(*codec));
  }
  if (auto read = e->RefreshDeletions(); !read) return Error(read.error());
  if (remote.registrar != nullptr) e->RegisterShards(remote);
  return std::shared_ptr<const EcExport>(std::move(e));
}

std::vector<uint32_t> EcExport::local_shards() const {
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < shards_.size(); ++i) {
    if (shards_[i]) out.push_back(i);
  }
  return out;
}

uint64_t EcExport::ecx_entries() const {
  return ecx_->size() / IdxEntrySize(info_.offset_width);
}

size_t EcExport::deleted_since_encoding() const {
  std::lock_guard lock(deleted_mu_);
  return deleted_.size();
}

bool EcExport::SameFiles(const ec::EcVolumeFiles& files) const {
  if (files.ecx != files_.ecx || files.shards != files_.shards || files.vif != files_.vif) {
    return false;
  }
  auto ecx = StatFile(files.ecx);
  if (!ecx || FileStamp{ecx->inode, ecx->size} != ecx_stamp_) return false;
  for (const auto& [shard, path] : files.shards) {
    if (shard >= ec::kMaxShards) continue;
    auto st = StatFile(path);
    if (!st || FileStamp{st->inode, st->size} != shard_stamps_[shard]) return false;
  }
  return true;
}

Result<size_t> EcExport::RefreshDeletions() const {
  std::lock_guard lock(deleted_mu_);
  std::ifstream in(files_.ecj, std::ios::binary);
  if (!in) {
    // weed creates the .ecj when it loads the volume; none yet means no deletions yet.
    if (!std::filesystem::exists(files_.ecj)) return size_t{0};
    return Error(Code::kIOError, fmt::format("reading {}: cannot open it", files_.ecj.string()));
  }
  in.seekg(0, std::ios::end);
  const auto end = static_cast<uint64_t>(in.tellg());
  if (end < ecj_consumed_) {  // rewritten (a rebuild merged it into the .ecx): read it again
    deleted_.clear();
    ecj_consumed_ = 0;
  }
  const uint64_t whole = (end - ecj_consumed_) / 8 * 8;
  if (whole == 0) return size_t{0};
  std::vector<uint8_t> buf(whole);
  in.seekg(static_cast<std::streamoff>(ecj_consumed_));
  if (!in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(whole))) {
    return Error(Code::kIOError, fmt::format("reading {}: short read", files_.ecj.string()));
  }
  const ec::EcjContents c = ec::ParseEcj(buf);
  size_t added = 0;
  for (uint64_t id : c.needle_ids)
    added += deleted_.insert(id).second ? 1 : 0;
  ecj_consumed_ += c.consumed_bytes;
  return added;
}

EcLocated EcExport::Locate(const FileId& fid) const {
  EcLocated out;
  const auto entry = ec::FindInSortedIndex(Bytes(*ecx_), info_.offset_width, fid.needle_id);
  if (!entry) {
    out.error = "no such needle";
    return out;
  }
  {
    std::lock_guard lock(deleted_mu_);
    if (entry->is_deletion() || deleted_.contains(fid.needle_id)) {
      out.status = LookupStatus::kDeleted;
      out.error = "needle was deleted";
      return out;
    }
  }
  if (layout_.shard_dat_size == 0) {
    out.status = LookupStatus::kUnknownVolume;
    out.error = fmt::format(
        "EC volume {}: no shard here and no datFileSize in its .vif: cannot place needles",
        files_.volume_id);
    return out;
  }
  out.dat_offset = entry->offset;
  out.size = entry->size;
  out.length = NeedleRecordLength(entry->size, version());
  const uint64_t dat_limit = info_.dat_file_size > 0
                                 ? info_.dat_file_size
                                 : layout_.shard_dat_size * uint64_t{layout_.data_shards};
  if (out.dat_offset < 8 || out.dat_offset + out.length > dat_limit + 8) {
    out.error = fmt::format("record at {}+{} lies outside the encoded volume ({} bytes)",
                            out.dat_offset, out.length, dat_limit);
    return out;
  }
  out.intervals = ec::LocateData(layout_, out.dat_offset, out.length);
  for (const auto& iv : out.intervals) {
    if (iv.shard >= shards_.size() || !shards_[iv.shard]) out.missing_shards.push_back(iv.shard);
  }
  std::sort(out.missing_shards.begin(), out.missing_shards.end());
  out.missing_shards.erase(std::unique(out.missing_shards.begin(), out.missing_shards.end()),
                           out.missing_shards.end());
  if (!out.missing_shards.empty() && codec_) out.rebuilt_shards.swap(out.missing_shards);
  out.status = LookupStatus::kOk;
  return out;
}

Status EcExport::Assemble(const EcLocated& where, std::span<uint8_t> out) const {
  if (out.size() > where.length) {
    return Status(Code::kInternal, "EC record buffer larger than the record");
  }
  size_t at = 0;
  for (const auto& iv : where.intervals) {
    if (at == out.size()) break;
    const uint64_t n = std::min<uint64_t>(iv.size, out.size() - at);
    if (iv.shard >= shards_.size() || !shards_[iv.shard]) {
      if (!codec_) return Status(Code::kUnavailable, MissingShardsMessage(where));
      SWRDMA_RETURN_IF_ERROR(Rebuild(iv.shard, iv.shard_offset, out.subspan(at, n)));
      at += n;
      continue;
    }
    const rdma::MappedFile& m = *shards_[iv.shard];
    if (iv.shard_offset > m.size() || n > m.size() - iv.shard_offset) {
      return Status(Code::kNotFound,
                    fmt::format("EC volume {}: shard {} is {} bytes, the needle needs {}+{}; "
                                "retry after the next scan",
                                files_.volume_id, iv.shard, m.size(), iv.shard_offset, n));
    }
    std::memcpy(out.data() + at, Bytes(m).data() + iv.shard_offset, n);
    at += n;
  }
  if (at != out.size()) return Status(Code::kInternal, "EC intervals shorter than the record");
  return Status::Ok();
}

bool EcExport::HoldsPrefix(const EcLocated& where, uint64_t n) const {
  uint64_t at = 0;
  for (const auto& iv : where.intervals) {
    if (at >= n) break;
    const bool here = iv.shard < shards_.size() && shards_[iv.shard];
    if (!here && !codec_) return false;
    at += iv.size;
  }
  return at >= n;
}

Result<EcExport::Pieces> EcExport::LocalPieces(const EcLocated& where) const {
  Pieces out;
  uint64_t at = 0;
  for (const auto& iv : where.intervals) {
    const bool here = (iv.shard < shards_.size() && shards_[iv.shard]) || codec_.has_value();
    if (here && iv.size > 0) {
      if (!out.pieces.empty() && out.pieces.back().record_offset + out.pieces.back().size == at) {
        out.pieces.back().size += iv.size;  // adjacent in the record: one piece
      } else {
        out.pieces.push_back({.record_offset = at, .size = iv.size});
      }
    }
    at += iv.size;
  }
  if (out.pieces.empty()) return Error(Code::kUnavailable, MissingShardsMessage(where));
  if (out.pieces.size() > kMaxEcPieces) {
    return Error(Code::kResourceExhausted,
                 fmt::format("EC volume {}: the needle's local parts are {} pieces, over {}",
                             files_.volume_id, out.pieces.size(), kMaxEcPieces));
  }
  // Each piece copied through Assemble's bounds checks: a sub-record view of the intervals.
  uint64_t total = 0;
  for (const EcPiece& p : out.pieces)
    total += p.size;
  out.bytes.resize(total);
  size_t filled = 0;
  for (const auto& iv : where.intervals) {
    const bool here = (iv.shard < shards_.size() && shards_[iv.shard]) || codec_.has_value();
    if (here && iv.size > 0) {
      EcLocated one = where;
      one.intervals = {iv};
      one.length = iv.size;
      one.missing_shards.clear();
      SWRDMA_RETURN_IF_ERROR(Assemble(one, std::span(out.bytes).subspan(filled, iv.size)));
      filled += iv.size;
    }
  }
  return out;
}

Status EcExport::Rebuild(uint32_t shard, uint64_t shard_offset, std::span<uint8_t> out) const {
  const uint32_t data = info_.data_shards;
  const uint32_t total = data + info_.parity_shards;
  if (shard >= total) {
    return Status(Code::kCorruption, fmt::format("EC volume {}: shard {} of a {}+{} volume",
                                                 files_.volume_id, shard, data, total - data));
  }
  // The first `data` local shards (data shards first: the cheapest to decode from).
  std::vector<uint32_t> sources;
  for (uint32_t i = 0; i < total && sources.size() < data; ++i) {
    if (shards_[i]) sources.push_back(i);
  }
  for (uint32_t i : sources) {
    const uint64_t size = shards_[i]->size();
    if (shard_offset > size || out.size() > size - shard_offset) {
      g_rebuild_failures.fetch_add(1, std::memory_order_relaxed);
      return Status(Code::kNotFound,
                    fmt::format("EC volume {}: rebuilding shard {} needs bytes {}+{} of shard {}, "
                                "which is {} bytes; retry after the next scan",
                                files_.volume_id, shard, shard_offset, out.size(), i, size));
    }
  }
  const uint64_t slice = std::min<uint64_t>(out.size(), kRebuildSlice);
  std::vector<std::vector<uint8_t>> scratch(total, std::vector<uint8_t>(slice));
  std::vector<uint8_t*> ptrs(total);
  for (uint32_t i = 0; i < total; ++i)
    ptrs[i] = scratch[i].data();
  const std::unique_ptr<bool[]> present(new bool[total]());  // (std::vector<bool> has no span)
  for (uint32_t i : sources)
    present[i] = true;
  for (uint64_t done = 0; done < out.size(); done += slice) {
    const uint64_t n = std::min<uint64_t>(slice, out.size() - done);
    for (uint32_t i : sources)
      std::memcpy(ptrs[i], Bytes(*shards_[i]).data() + shard_offset + done, n);
    if (Status s = codec_->ReconstructData(n, ptrs, std::span<const bool>(present.get(), total));
        !s.ok()) {
      g_rebuild_failures.fetch_add(1, std::memory_order_relaxed);
      return s.WithContext(
          fmt::format("EC volume {}: rebuilding shard {}", files_.volume_id, shard));
    }
    std::memcpy(out.data() + done, ptrs[shard], n);
  }
  g_rebuilt_pieces.fetch_add(1, std::memory_order_relaxed);
  g_rebuilt_bytes.fetch_add(out.size(), std::memory_order_relaxed);
  return Status::Ok();
}

std::vector<std::string> EcExport::SampleLive(size_t count, uint64_t seed) const {
  const auto ecx = Bytes(*ecx_);
  const size_t entry_size = IdxEntrySize(info_.offset_width);
  const uint64_t entries = ecx.size() / entry_size;
  std::vector<std::string> out;
  if (entries == 0 || count == 0) return out;
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> order;
  if (entries <= 4 * count) {  // small volumes: a shuffle of every entry
    order.resize(entries);
    std::iota(order.begin(), order.end(), uint64_t{0});
    std::shuffle(order.begin(), order.end(), rng);
  } else {
    std::unordered_set<uint64_t> picked;
    while (picked.size() < 4 * count)
      picked.insert(rng() % entries);
    order.assign(picked.begin(), picked.end());
    std::shuffle(order.begin(), order.end(), rng);
  }
  for (uint64_t i : order) {
    if (out.size() == count) break;
    const IdxEntry e = DecodeIdxEntry(ecx.data() + i * entry_size, info_.offset_width);
    const FileId probe{volume_id(), e.needle_id, 0};
    EcLocated where = Locate(probe);
    if (where.status != LookupStatus::kOk || !where.missing_shards.empty()) continue;
    uint8_t header[16];
    if (where.length < 16 || !Assemble(where, header).ok()) continue;
    if (LoadBe64(header + 4) != e.needle_id) continue;
    out.push_back(FormatFileId({volume_id(), e.needle_id, LoadBe32(header)}));
  }
  return out;
}

std::string EcExport::MissingShardsMessage(const EcLocated& where) const {
  return fmt::format(
      "EC volume {}: shard(s) {} holding this needle are not on this server (the agent of "
      "another holder the master lists serves them, or the client assembles the needle from "
      "the pieces of several holders)",
      files_.volume_id, fmt::join(where.missing_shards, ", "));
}

bool EcExport::TakeFaulted() const {
  bool faulted = ecx_->TakeFaulted();
  for (const auto& s : shards_) {
    if (s && s->TakeFaulted()) faulted = true;
  }
  return faulted;
}

LookupResult EcLookupAnswer(std::string_view fid, const EcExport& e, const EcLocated& where) {
  LookupResult r;
  r.fid = std::string(fid);
  r.status = LookupStatus::kOk;
  r.volume_id = e.volume_id();
  r.generation = e.generation();
  r.length = where.length;
  r.size = where.size;
  r.version = static_cast<uint8_t>(e.version());
  r.ec = true;
  r.ec_intervals = e.RemoteIntervals(where);
  return r;
}

}  // namespace swrdma::agent
