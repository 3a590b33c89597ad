#include "tests/tools/chaos_volume.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "protocol/byte_order.h"
#include "protocol/crc32c.h"
#include "protocol/gzip.h"
#include "protocol/needle.h"
#include "volume/idx_file.h"
#include "volume/superblock.h"
#include "volume/volume_files.h"
#include "volume/volume_generator.h"

namespace swrdma::chaos {

namespace fs = std::filesystem;

namespace {

std::string Errno() {
  return std::strerror(errno);
}

VolumeFiles FilesOf(const fs::path& dir, uint32_t vid) {
  VolumeFiles f;
  f.volume_id = vid;
  f.dat = dir / fmt::format("{}.dat", vid);
  f.idx = dir / fmt::format("{}.idx", vid);
  if (fs::path vif = dir / fmt::format("{}.vif", vid); fs::exists(vif)) f.vif = vif;
  return f;
}

// Reads exactly `len` bytes at `offset` (fewer only at the end of the file: the result is short).
Result<std::vector<uint8_t>> ReadAt(const fs::path& path, uint64_t offset, uint64_t len) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(Code::kIOError, fmt::format("opening {}: {}", path.string(), Errno()));
  std::vector<uint8_t> buf(len);
  size_t got = 0;
  while (got < len) {
    const ssize_t n = ::pread(fd, buf.data() + got, len - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string e = Errno();
      ::close(fd);
      return Error(Code::kIOError, fmt::format("reading {}: {}", path.string(), e));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  buf.resize(got);
  return buf;
}

}  // namespace

Result<ChaosVolume> ChaosVolume::OpenOrCreate(const fs::path& dir, uint32_t vid, fs::path stage,
                                              uint64_t first_needle_id, uint64_t seed) {
  ChaosVolume v(dir, vid, std::move(stage), seed ^ (uint64_t{vid} << 40));
  v.next_id_ = std::max<uint64_t>(1, first_needle_id);
  const VolumeFiles files = FilesOf(dir, vid);
  if (!fs::exists(files.dat) && !fs::exists(files.idx)) {
    SWRDMA_RETURN_IF_ERROR(v.Create(0));
    return v;
  }
  SWRDMA_RETURN_IF_ERROR(v.LoadExisting());
  return v;
}

Status ChaosVolume::Create(uint16_t revision) {
  VolumeWriterOptions o;
  o.dir = dir_;
  o.volume_id = vid_;
  o.compaction_revision = revision;
  SWRDMA_ASSIGN_OR_RETURN(auto w, VolumeWriter::Create(o));
  writer_.emplace(std::move(w));
  live_.clear();
  return Status::Ok();
}

Status ChaosVolume::LoadExisting() {
  const VolumeFiles files = FilesOf(dir_, vid_);
  live_.clear();
  uint64_t max_id = 0;
  SWRDMA_ASSIGN_OR_RETURN(const OffsetWidth width, VolumeOffsetWidth(files, OffsetWidth::k4));
  SWRDMA_ASSIGN_OR_RETURN(auto stats, ScanIdxFile(files.idx, width, 0, [&](const IdxEntry& e) {
                            max_id = std::max(max_id, e.needle_id);
                            if (e.is_deletion()) {
                              live_.erase(e.needle_id);
                            } else {
                              live_[e.needle_id] =
                                  Live{0, e.offset, e.size};  // cookie read when needed
                            }
                          }));
  (void)stats;
  next_id_ = std::max(next_id_, max_id + 1);
  // A volume whose last record was cut cannot be appended to (VolumeWriter::Open refuses an
  // .idx pointing past the .dat, as the volume server does); vacuum or remove it first.
  auto w = VolumeWriter::Open(files);
  if (w) {
    writer_.emplace(std::move(*w));
  } else {
    writer_.reset();
    append_error_ = w.error().ToString();
  }
  return Status::Ok();
}

Status ChaosVolume::Writable() const {
  if (writer_) return Status::Ok();
  return Status(Code::kUnavailable,
                fmt::format("volume {} cannot be appended to ({}); vacuum or remove it", vid_,
                            append_error_));
}

Result<uint32_t> ChaosVolume::CookieOf(uint64_t id, Live& where) const {
  if (where.cookie != 0) return where.cookie;
  SWRDMA_ASSIGN_OR_RETURN(auto head,
                          ReadAt(FilesOf(dir_, vid_).dat, where.offset, kNeedleHeaderSize));
  if (head.size() < kNeedleHeaderSize || LoadBe64(head.data() + 4) != id) {
    return Error(Code::kCorruption,
                 fmt::format("volume {}: no record of needle {:x} at {}", vid_, id, where.offset));
  }
  where.cookie = LoadBe32(head.data());
  return where.cookie;
}

Status ChaosVolume::AppendOne(const NeedleShape& shape, ManifestWriter& manifest) {
  SWRDMA_RETURN_IF_ERROR(Writable());
  const uint64_t id = next_id_++;
  // Log-uniform sizes: mostly small needles, a few large ones.
  const double lo = std::log(static_cast<double>(std::max<uint64_t>(1, shape.min_size)));
  const double hi = std::log(static_cast<double>(std::max(shape.min_size, shape.max_size)) + 1);
  const uint64_t size = std::clamp<uint64_t>(
      static_cast<uint64_t>(std::exp(std::uniform_real_distribution<double>(lo, hi)(rng_))),
      std::max<uint64_t>(1, shape.min_size), std::max(shape.min_size, shape.max_size));
  const bool gzip = std::bernoulli_distribution(shape.gzip_fraction)(rng_);
  uint32_t cookie = 0;
  while (cookie == 0)
    cookie = static_cast<uint32_t>(rng_());  // 0 marks "not read yet" in live_
  const std::vector<uint8_t> data = GeneratedNeedleData(rng_(), id, size, gzip);
  std::vector<uint8_t> stored;
  if (gzip) {
    SWRDMA_ASSIGN_OR_RETURN(stored, Gzip(data));
  }
  NeedleSpec spec;
  spec.id = id;
  spec.cookie = cookie;
  spec.data = gzip ? std::span<const uint8_t>(stored) : std::span<const uint8_t>(data);
  spec.gzipped = gzip;
  SWRDMA_ASSIGN_OR_RETURN(const IdxEntry entry, writer_->Append(spec));
  live_[id] = Live{cookie, entry.offset, entry.size};
  return manifest.Put({vid_, id, cookie}, data.size(), Crc32c(data), gzip);
}

uint64_t ChaosVolume::RandomLiveId() {
  auto it = live_.begin();
  std::advance(it, std::uniform_int_distribution<size_t>(0, live_.size() - 1)(rng_));
  return it->first;
}

Result<size_t> ChaosVolume::DeleteRandom(size_t count, ManifestWriter& manifest) {
  SWRDMA_RETURN_IF_ERROR(Writable());
  size_t done = 0;
  for (; done < count && !live_.empty(); ++done) {
    const uint64_t id = RandomLiveId();
    Live& where = live_[id];
    SWRDMA_ASSIGN_OR_RETURN(const uint32_t cookie, CookieOf(id, where));
    SWRDMA_RETURN_IF_ERROR(writer_->Delete(id, cookie));
    live_.erase(id);
    SWRDMA_RETURN_IF_ERROR(manifest.Deleted({vid_, id, cookie}));
  }
  return done;
}

Status ChaosVolume::TruncateLast(ManifestWriter& manifest) {
  SWRDMA_RETURN_IF_ERROR(Writable());
  if (live_.empty()) return Status(Code::kNotFound, fmt::format("volume {} is empty", vid_));
  auto last = live_.begin();
  for (auto it = live_.begin(); it != live_.end(); ++it) {
    if (it->second.offset > last->second.offset) last = it;
  }
  const uint64_t id = last->first;
  SWRDMA_ASSIGN_OR_RETURN(const uint32_t cookie, CookieOf(id, last->second));
  const uint64_t length = NeedleRecordLength(last->second.size, writer_->version());
  const uint64_t cut = last->second.offset + std::max<uint64_t>(1, length / 2);
  const fs::path dat = writer_->files().dat;
  if (::truncate(dat.c_str(), static_cast<off_t>(cut)) != 0) {
    return Status(Code::kIOError, fmt::format("truncating {}: {}", dat.string(), Errno()));
  }
  live_.erase(last);
  return manifest.Cut({vid_, id, cookie});
}

Status ChaosVolume::Vacuum(ManifestWriter& manifest) {
  const VolumeFiles files = FilesOf(dir_, vid_);
  SWRDMA_ASSIGN_OR_RETURN(auto head, ReadAt(files.dat, 0, kSuperBlockSize + 0xFFFF));
  SWRDMA_ASSIGN_OR_RETURN(const SuperBlock sb, ParseSuperBlock(head));
  SWRDMA_ASSIGN_OR_RETURN(const OffsetWidth width, VolumeOffsetWidth(files, OffsetWidth::k4));
  std::error_code ec;
  fs::remove_all(stage_, ec);
  fs::create_directories(stage_, ec);
  if (ec) {
    return Status(Code::kIOError, fmt::format("creating the stage directory {}: {}",
                                              stage_.string(), ec.message()));
  }
  VolumeWriterOptions o;
  o.dir = stage_;
  o.volume_id = vid_;
  o.version = sb.version;
  o.offset_width = width;
  o.replica_placement = sb.replica_placement;
  o.compaction_revision = static_cast<uint16_t>(sb.compaction_revision + 1);
  o.superblock_extra = sb.extra;
  SWRDMA_ASSIGN_OR_RETURN(auto created, VolumeWriter::Create(o));
  std::optional<VolumeWriter> compacted(std::move(created));
  std::map<uint64_t, Live> kept;
  for (auto& [id, where] : live_) {
    const uint64_t length = NeedleRecordLength(where.size, sb.version);
    SWRDMA_ASSIGN_OR_RETURN(auto bytes, ReadAt(files.dat, where.offset, length));
    auto rec = ParseNeedleRecord(bytes, sb.version);
    if (!rec || rec->header.id != id || !VerifyNeedleChecksum(*rec)) continue;  // damaged: drop
    NeedleSpec spec;
    spec.id = id;
    spec.cookie = rec->header.cookie;
    spec.data = rec->data;
    spec.gzipped = rec->is_gzipped();
    spec.chunk_manifest = rec->is_chunk_manifest();
    spec.name = std::string(rec->name);
    spec.mime = std::string(rec->mime);
    if (rec->flags & needle_flags::kHasLastModified) spec.last_modified = rec->last_modified;
    if (rec->flags & needle_flags::kHasTtl) spec.ttl = std::pair(rec->ttl_count, rec->ttl_unit);
    spec.pairs = std::string(rec->pairs.begin(), rec->pairs.end());
    spec.append_at_ns = rec->append_at_ns;  // a compaction keeps each needle's AppendAtNs
    SWRDMA_ASSIGN_OR_RETURN(const IdxEntry entry, compacted->Append(spec));
    kept[id] = Live{rec->header.cookie, entry.offset, entry.size};
  }
  SWRDMA_RETURN_IF_ERROR(compacted->Sync());
  const VolumeFiles staged = compacted->files();
  compacted.reset();
  writer_.reset();
  // Commit as the volume server does: new files renamed over the old ones, .dat before .idx.
  for (const auto& [from, to] :
       {std::pair(staged.vif.value_or(fs::path()), dir_ / fmt::format("{}.vif", vid_)),
        std::pair(staged.dat, files.dat), std::pair(staged.idx, files.idx)}) {
    if (from.empty()) continue;
    fs::rename(from, to, ec);
    if (ec) {
      return Status(Code::kIOError, fmt::format("vacuum of volume {}: renaming {} over {}: {}",
                                                vid_, from.string(), to.string(), ec.message()));
    }
  }
  live_ = std::move(kept);
  SWRDMA_ASSIGN_OR_RETURN(auto reopened, VolumeWriter::Open(FilesOf(dir_, vid_)));
  writer_.emplace(std::move(reopened));
  return manifest.Vacuumed(vid_, o.compaction_revision, live_.size());
}

Status ChaosVolume::Remove(bool recreate, std::chrono::milliseconds pause,
                           ManifestWriter& manifest) {
  writer_.reset();
  const VolumeFiles files = FilesOf(dir_, vid_);
  std::error_code ec;
  for (const fs::path& p : {files.dat, files.idx, dir_ / fmt::format("{}.vif", vid_)}) {
    fs::remove(p, ec);
    if (ec) return Status(Code::kIOError, fmt::format("removing {}: {}", p.string(), ec.message()));
  }
  live_.clear();
  SWRDMA_RETURN_IF_ERROR(manifest.Removed(vid_));
  if (!recreate) {
    append_error_ = "removed";
    return Status::Ok();
  }
  std::this_thread::sleep_for(pause);
  SWRDMA_RETURN_IF_ERROR(Create(0));
  return manifest.Created(vid_);
}

}  // namespace swrdma::chaos
