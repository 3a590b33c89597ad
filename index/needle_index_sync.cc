// Keeping one volume's entries in step with its `.dat`/`.idx`: apply the new `.idx` tail while the
// `.dat` is the same file, rebuild under a new generation when it is not.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/write_batch.h>

#include "index/lookup_cache.h"
#include "index/needle_index.h"
#include "index/needle_index_internal.h"
#include "volume/idx_replay.h"
#include "volume/superblock.h"

namespace swrdma {

using namespace index_internal;

namespace {

constexpr uint64_t kProgressEvery = 1 << 20;
constexpr uint64_t kProgressStride = 1 << 16;

// The `.dat` as opened for this sync: its identity and superblock. Holding the descriptor means
// later size checks are of this very inode even if the path is renamed over meanwhile.
class OpenDat {
 public:
  static Result<OpenDat> Open(const std::filesystem::path& path) {
    OpenDat d;
    d.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (d.fd_ < 0) {
      return Error(Code::kIOError,
                   fmt::format("opening {}: {}", path.string(), std::strerror(errno)));
    }
    struct stat st{};
    if (::fstat(d.fd_, &st) != 0) {
      return Error(Code::kIOError, fmt::format("stat {}: {}", path.string(), std::strerror(errno)));
    }
    d.device_ = st.st_dev;
    d.inode_ = st.st_ino;
    // The superblock: 8 bytes, then (v2/v3) as many extra bytes as its last two bytes say.
    std::vector<uint8_t> head(kSuperBlockSize);
    SWRDMA_RETURN_IF_ERROR(d.ReadAt(path, head, 0));
    if (head[0] >= 2) {
      const uint16_t extra = LoadBe16(head.data() + 6);
      if (extra > 0) {
        head.resize(kSuperBlockSize + extra);
        SWRDMA_RETURN_IF_ERROR(d.ReadAt(path, head, 0));
      }
    }
    auto sb = ParseSuperBlock(head);
    if (!sb) return Error(sb.error().WithContext(fmt::format("reading {}", path.string())));
    d.superblock_ = std::move(*sb);
    return d;
  }

  OpenDat(OpenDat&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)),
        device_(o.device_),
        inode_(o.inode_),
        superblock_(std::move(o.superblock_)) {}
  OpenDat& operator=(OpenDat&&) = delete;
  ~OpenDat() {
    if (fd_ >= 0) ::close(fd_);
  }

  Result<uint64_t> Size(const std::filesystem::path& path) const {
    struct stat st{};
    if (::fstat(fd_, &st) != 0) {
      return Error(Code::kIOError, fmt::format("stat {}: {}", path.string(), std::strerror(errno)));
    }
    return static_cast<uint64_t>(st.st_size);
  }
  // The size field of the record header at `offset`, or nullopt when those bytes are not there.
  std::optional<uint32_t> RecordSizeAt(uint64_t offset) const {
    uint8_t head[kNeedleHeaderSize];
    if (::pread(fd_, head, sizeof head, static_cast<off_t>(offset)) !=
        static_cast<ssize_t>(sizeof head)) {
      return std::nullopt;
    }
    return LoadBe32(head + 12);
  }
  uint64_t device() const { return device_; }
  uint64_t inode() const { return inode_; }
  const SuperBlock& superblock() const { return superblock_; }

 private:
  OpenDat() = default;
  Status ReadAt(const std::filesystem::path& path, std::vector<uint8_t>& buf, off_t at) const {
    size_t got = 0;
    while (got < buf.size()) {
      const ssize_t n = ::pread(fd_, buf.data() + got, buf.size() - got, at + got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return Status(Code::kIOError,
                      fmt::format("reading {}: {}", path.string(), std::strerror(errno)));
      }
      if (n == 0) {
        return Status(Code::kCorruption,
                      fmt::format("reading {}: superblock truncated at {} bytes (need {})",
                                  path.string(), got, buf.size()));
      }
      got += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  int fd_ = -1;
  uint64_t device_ = 0;
  uint64_t inode_ = 0;
  SuperBlock superblock_;
};

Result<struct stat> StatPath(const std::filesystem::path& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    return Error(Code::kIOError, fmt::format("stat {}: {}", path.string(), std::strerror(errno)));
  }
  return st;
}

// Why the stored entries cannot be extended by the `.idx` tail; empty if they can.
std::string RebuildReason(const std::optional<VolumeState>& prev, const VolumeState& now,
                          uint64_t idx_size, uint64_t dat_size, bool forced) {
  if (!prev) return "new volume";
  if (forced) return "rebuild requested";
  if (prev->dat_device != now.dat_device || prev->dat_inode != now.dat_inode) {
    return fmt::format(".dat replaced (inode {} -> {})", prev->dat_inode, now.dat_inode);
  }
  if (prev->compaction_revision != now.compaction_revision) {
    return fmt::format("compaction revision {} -> {}", prev->compaction_revision,
                       now.compaction_revision);
  }
  if (prev->idx_inode != now.idx_inode) {
    return fmt::format(".idx replaced (inode {} -> {})", prev->idx_inode, now.idx_inode);
  }
  if (idx_size < prev->idx_applied) {
    return fmt::format(".idx shrank to {} bytes below the {} applied", idx_size, prev->idx_applied);
  }
  if (dat_size < prev->published_end) {
    return fmt::format(".dat shrank to {} bytes below published records ending at {}", dat_size,
                       prev->published_end);
  }
  if (prev->offset_width != now.offset_width) {
    return fmt::format(".idx offset width {} -> {}", static_cast<int>(prev->offset_width),
                       static_cast<int>(now.offset_width));
  }
  if (prev->needle_version != now.needle_version) return "needle version changed";
  return {};
}

NeedleValueBytes ValueOf(const IdxEntry& e, uint64_t generation) {
  return e.is_deletion() ? EncodeNeedleValue(e.offset, kTombstoneSize, 0, generation)
                         : EncodeNeedleValue(e.offset, e.size, 0, generation);
}

}  // namespace

Result<SyncResult> NeedleIndex::SyncVolume(const VolumeFiles& volume, const SyncOptions& options,
                                           const SyncProgressFn& progress) {
  std::lock_guard lock(write_mu_);
  const uint32_t vid = volume.volume_id;
  const std::string ctx = fmt::format("indexing volume {}", vid);

  auto dat = OpenDat::Open(volume.dat);
  if (!dat) return Error(dat.error().WithContext(ctx));
  auto width = VolumeOffsetWidth(volume, options.fallback_offset_width);
  if (!width) return Error(width.error().WithContext(ctx));
  SWRDMA_ASSIGN_OR_RETURN(struct stat idx_st, StatPath(volume.idx));
  SWRDMA_ASSIGN_OR_RETURN(uint64_t dat_size, dat->Size(volume.dat));

  std::optional<VolumeState> prev;
  if (auto got = GetVolume(vid)) {
    prev = *got;
  } else if (got.error().code() != Code::kUnknownVolume) {
    return Error(got.error().WithContext(ctx));
  }

  VolumeState now;
  now.volume_id = vid;
  now.offset_width = *width;
  now.needle_version = dat->superblock().version;
  now.compaction_revision = dat->superblock().compaction_revision;
  now.dat_device = dat->device();
  now.dat_inode = dat->inode();
  now.idx_inode = idx_st.st_ino;
  const uint64_t idx_size = static_cast<uint64_t>(idx_st.st_size);
  const uint64_t entry_size = IdxEntrySize(*width);

  SyncResult result;
  result.rebuild_reason = RebuildReason(prev, now, idx_size, dat_size, options.force_rebuild);
  const bool rebuild = !result.rebuild_reason.empty();
  const uint64_t from = rebuild ? 0 : prev->idx_applied;
  if (!rebuild && idx_size - from < entry_size) {
    result.damaged_tail_bytes = idx_size - from;
    result.state = *prev;
    return result;
  }

  auto tail = ReadIdxTail(volume.idx, *width, from, [&](uint64_t done, uint64_t total) {
    if (progress) progress("scan", done, total);
  });
  if (!tail) return Error(tail.error().WithContext(ctx));
  // Sized after reading the `.idx`: the volume server appends the record before its entry.
  SWRDMA_ASSIGN_OR_RETURN(dat_size, dat->Size(volume.dat));
  result.unwrapped_entries =
      UnwrapOffsets(tail->entries, *width, dat_size, now.needle_version,
                    [&](uint64_t offset) { return dat->RecordSizeAt(offset); });
  HoldBackUnwritten(*tail, *width, dat_size, now.needle_version);

  // A vacuum may have renamed new files over ours while we read; publish nothing then.
  SWRDMA_ASSIGN_OR_RETURN(struct stat dat_now, StatPath(volume.dat));
  SWRDMA_ASSIGN_OR_RETURN(struct stat idx_now, StatPath(volume.idx));
  if (dat_now.st_ino != now.dat_inode || dat_now.st_dev != now.dat_device ||
      idx_now.st_ino != now.idx_inode) {
    return Error(Code::kUnavailable,
                 fmt::format("{}: {} or {} was replaced while being read (vacuum?); sync again",
                             ctx, volume.dat.string(), volume.idx.string()));
  }

  result.entries_applied = tail->entries.size();
  result.damaged_tail_bytes = tail->damaged_tail_bytes;
  result.held_back_entries = tail->held_back_entries;
  result.held_back_bytes = tail->held_back_bytes;

  if (rebuild) {
    SWRDMA_ASSIGN_OR_RETURN(now.generation, NextGeneration());
    now.dat_size = dat_size;
    now.published_end = tail->record_end;
    now.idx_applied = tail->applied_bytes;
    ReplayLastWins(tail->entries);
    for (const IdxEntry& e : tail->entries)
      ++(e.is_deletion() ? now.deleted : now.live);
    Status s = WriteRebuild(now, tail->entries, progress);
    cache_->InvalidateAll();  // even after a failure: part of it may have landed
    if (!s.ok()) return Error(s.WithContext(ctx));
    result.action = SyncAction::kRebuilt;
    result.state = now;
    return result;
  }

  result.state = *prev;
  if (tail->entries.empty()) return result;  // only held-back or partial entries: nothing new
  result.state.dat_size = dat_size;
  Status s = WriteTail(result.state, tail->entries, progress);
  if (!s.ok()) return Error(s.WithContext(ctx));
  result.action = SyncAction::kAppliedTail;
  return result;
}

Status NeedleIndex::WriteRebuild(const VolumeState& state, const std::vector<IdxEntry>& entries,
                                 const SyncProgressFn& progress) {
  const uint32_t vid = state.volume_id;
  const VolumeKey vkey = EncodeVolumeKey(vid);
  const std::string vend = VolumeRangeEnd(vid);
  const std::string state_bytes = EncodeVolumeState(state);
  const uint64_t total = entries.size();
  if (progress) progress("write", 0, total);

  if (total < std::max<uint64_t>(1, options_.ingest_min_entries)) {
    rocksdb::WriteBatch batch;
    rocksdb::Status s = batch.DeleteRange(h_->needles, AsSlice(vkey), vend);
    if (s.ok()) s = batch.Put(h_->needles, AsSlice(vkey), state_bytes);
    for (size_t i = 0; s.ok() && i < entries.size(); ++i) {
      const IdxEntry& e = entries[i];
      s = batch.Put(h_->needles, AsSlice(EncodeNeedleKey(vid, e.needle_id)),
                    AsSlice(ValueOf(e, state.generation)));
    }
    if (s.ok()) s = h_->db->Write(rocksdb::WriteOptions(), &batch);
    if (progress) progress("write", total, total);
    return ToStatus(s, "writing the rebuilt volume");
  }

  // SST files, written in parallel, that together hold a range deletion of the volume's old keys,
  // the new state and every entry. File i covers needle ids [first of part i, first of part
  // i+1): its range deletion spans exactly that, so the files do not overlap and are ingested in
  // one call, i.e. one version edit: readers see the old volume or the new, never a mix. Each
  // file gets a sequence number above everything present, so its deletion covers the old keys
  // but not its own.
  const size_t parts =
      std::clamp<size_t>(total / std::max<uint64_t>(1, options_.min_entries_per_build_thread), 1,
                         std::max<size_t>(1, options_.build_threads));
  std::vector<std::string> files(parts);
  std::vector<rocksdb::Status> statuses(parts);
  std::atomic<uint64_t> written{0};
  auto write_part = [&](size_t part) {
    const size_t begin = total * part / parts, end = total * (part + 1) / parts;
    files[part] =
        (h_->ingest_dir / fmt::format("{}-{}-{}.sst", vid, state.generation, part)).string();
    // Deletion range [lo, hi): from the volume key (part 0) or this part's first key, up to the
    // next part's first key, written as "the key of that id - 1, plus a zero byte" (no 12-byte
    // key lies between the two; equal bounds would count as overlapping files), or to the
    // volume's end.
    const NeedleKeyBytes first = EncodeNeedleKey(vid, entries[begin].needle_id);
    const std::string lo =
        part == 0 ? std::string(vkey.data(), vkey.size()) : std::string(first.data(), first.size());
    std::string hi = vend;
    if (part + 1 < parts) {
      const NeedleKeyBytes before_next = EncodeNeedleKey(vid, entries[end].needle_id - 1);
      hi = std::string(before_next.data(), before_next.size()) + std::string(1, '\0');
    }
    // Keep the file's pages cached: lookups start right after ingestion.
    rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), h_->options, h_->needles,
                                  /*invalidate_page_cache=*/false);
    rocksdb::Status s = writer.Open(files[part]);
    if (s.ok()) s = writer.DeleteRange(lo, hi);
    if (s.ok() && part == 0) s = writer.Put(AsSlice(vkey), state_bytes);
    for (size_t i = begin; s.ok() && i < end; ++i) {
      const IdxEntry& e = entries[i];
      s = writer.Put(AsSlice(EncodeNeedleKey(vid, e.needle_id)),
                     AsSlice(ValueOf(e, state.generation)));
      if ((i - begin + 1) % kProgressStride == 0) {
        const uint64_t done = written.fetch_add(kProgressStride) + kProgressStride;
        // Only the calling thread reports, so the callback never runs concurrently.
        if (part == 0 && progress && done % kProgressEvery < kProgressStride) {
          progress("write", done, total);
        }
      }
    }
    if (s.ok()) s = writer.Finish();
    statuses[part] = s;
  };
  {
    std::vector<std::jthread> helpers;
    for (size_t part = 1; part < parts; ++part)
      helpers.emplace_back(write_part, part);
    write_part(0);
  }
  rocksdb::Status s;
  for (size_t part = 0; part < parts && s.ok(); ++part)
    s = statuses[part];
  if (s.ok()) {
    rocksdb::IngestExternalFileOptions io;
    io.move_files = true;  // hard link: the scratch dir is inside the database directory
    s = h_->db->IngestExternalFile(h_->needles, files, io);
  }
  std::error_code ec;
  for (const std::string& f : files)
    std::filesystem::remove(f, ec);  // linked in by now
  if (progress) progress("write", total, total);
  return ToStatus(
      s, fmt::format("writing and ingesting {} SST file(s) in {}", parts, h_->ingest_dir.string()));
}

Status NeedleIndex::WriteTail(VolumeState& state, const std::vector<IdxEntry>& entries,
                              const SyncProgressFn& progress) {
  const uint32_t vid = state.volume_id;
  const uint64_t entry_size = IdxEntrySize(state.offset_width);
  const size_t chunk = std::max<uint64_t>(1, options_.tail_batch_entries);
  const VolumeKey vkey = EncodeVolumeKey(vid);

  for (size_t begin = 0; begin < entries.size(); begin += chunk) {
    const size_t end = std::min(entries.size(), begin + chunk);
    VolumeState next = state;
    for (size_t i = begin; i < end; ++i) {
      next.published_end =
          std::max(next.published_end, IdxEntryRecordEnd(entries[i], state.needle_version));
    }
    next.idx_applied += (end - begin) * entry_size;

    // Last entry per needle within the chunk, and what the index held before, for the counts.
    std::vector<IdxEntry> last(entries.begin() + begin, entries.begin() + end);
    ReplayLastWins(last);
    std::vector<NeedleKeyBytes> keys(last.size());
    std::vector<rocksdb::Slice> slices(last.size());
    for (size_t i = 0; i < last.size(); ++i) {
      keys[i] = EncodeNeedleKey(vid, last[i].needle_id);
      slices[i] = AsSlice(keys[i]);
    }
    std::vector<rocksdb::PinnableSlice> old(last.size());
    std::vector<rocksdb::Status> old_status(last.size());
    h_->db->MultiGet(rocksdb::ReadOptions(), h_->needles, last.size(), slices.data(), old.data(),
                     old_status.data(), /*sorted_input=*/true);

    rocksdb::WriteBatch batch;
    rocksdb::Status s;
    for (size_t i = 0; s.ok() && i < last.size(); ++i) {
      if (old_status[i].ok()) {
        --(IsTombstoneValue(old[i]) ? next.deleted : next.live);
      } else if (!old_status[i].IsNotFound()) {
        return ToStatus(old_status[i], "reading entries the .idx tail overrides");
      }
      ++(last[i].is_deletion() ? next.deleted : next.live);
      s = batch.Put(h_->needles, slices[i], AsSlice(ValueOf(last[i], state.generation)));
    }
    // The watermark travels with its entries: after a crash either both landed or neither.
    if (s.ok()) s = batch.Put(h_->needles, AsSlice(vkey), EncodeVolumeState(next));
    if (s.ok()) s = h_->db->Write(rocksdb::WriteOptions(), &batch);
    // After the write: a lookup that missed before it cannot keep what it read (LookupCache).
    for (const IdxEntry& e : last)
      cache_->Invalidate(vid, e.needle_id);
    if (!s.ok()) return ToStatus(s, "writing the .idx tail");
    state = next;
    if (progress) progress("write", end, entries.size());
  }
  return Status::Ok();
}

}  // namespace swrdma
