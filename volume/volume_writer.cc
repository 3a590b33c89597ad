#include "volume/volume_writer.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "protocol/byte_order.h"

namespace swrdma {

namespace {

std::string Errno() {
  return std::strerror(errno);
}

Status WriteFull(int fd, std::span<const uint8_t> data, uint64_t offset,
                 const std::filesystem::path& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status(Code::kIOError, fmt::format("writing {} at byte {}: {}", path.string(),
                                                offset + done, Errno()));
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status ReadFull(int fd, std::span<uint8_t> out, uint64_t offset,
                const std::filesystem::path& path) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status(Code::kIOError, fmt::format("reading {} at byte {}: {}", path.string(),
                                                offset + done, Errno()));
    }
    if (n == 0) {
      return Status(Code::kCorruption,
                    fmt::format("reading {}: {} bytes wanted at byte {}, file ends first",
                                path.string(), out.size(), offset));
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<uint64_t> FileSize(int fd, const std::filesystem::path& path) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    return Error(Code::kIOError, fmt::format("stat {}: {}", path.string(), Errno()));
  }
  return static_cast<uint64_t>(st.st_size);
}

uint64_t AlignUp8(uint64_t v) {
  return (v + 7) & ~uint64_t{7};
}

// The offset field holds offset/8 in 32 (k4) or 40 (k5) bits: 32 GiB or 8 TiB per volume.
uint64_t MaxOffset(OffsetWidth w) {
  return (w == OffsetWidth::k5 ? (uint64_t{1} << 40) : (uint64_t{1} << 32)) * kIdxOffsetUnit;
}

std::string VifJson(const SuperBlock& sb, OffsetWidth w) {
  // protojson VolumeInfo as SaveVolumeInfo writes it (2-space indent, camelCase names).
  return fmt::format(
      "{{\n  \"version\": {},\n  \"replication\": \"{}\",\n  \"bytesOffset\": {}\n}}",
      static_cast<int>(sb.version), sb.replica_placement_string(), static_cast<int>(w));
}

}  // namespace

VolumeWriter::VolumeWriter(VolumeWriter&& other) noexcept {
  *this = std::move(other);
}

VolumeWriter& VolumeWriter::operator=(VolumeWriter&& other) noexcept {
  if (this != &other) {
    Close();
    files_ = std::move(other.files_);
    superblock_ = std::move(other.superblock_);
    offset_width_ = other.offset_width_;
    dat_fd_ = std::exchange(other.dat_fd_, -1);
    idx_fd_ = std::exchange(other.idx_fd_, -1);
    dat_size_ = other.dat_size_;
    idx_size_ = other.idx_size_;
    last_append_at_ns_ = other.last_append_at_ns_;
    live_ = std::move(other.live_);
    scratch_ = std::move(other.scratch_);
  }
  return *this;
}

VolumeWriter::~VolumeWriter() {
  Close();
}

void VolumeWriter::Close() {
  if (dat_fd_ >= 0) ::close(dat_fd_);
  if (idx_fd_ >= 0) ::close(idx_fd_);
  dat_fd_ = idx_fd_ = -1;
}

Result<VolumeWriter> VolumeWriter::Create(const VolumeWriterOptions& opts) {
  VolumeWriter w;
  w.files_.volume_id = opts.volume_id;
  w.files_.collection = opts.collection;
  const std::string base = w.files_.base_name();
  w.files_.dat = opts.dir / (base + ".dat");
  w.files_.idx = opts.dir / (base + ".idx");
  if (opts.write_vif) w.files_.vif = opts.dir / (base + ".vif");
  for (const auto& p : {w.files_.dat, w.files_.idx, opts.dir / (base + ".vif")}) {
    std::error_code ec;
    if (std::filesystem::exists(p, ec)) {
      return Error(Code::kInvalidArgument,
                   fmt::format("creating volume {}: {} already exists; remove the volume's files "
                               "or pick another volume id",
                               base, p.string()));
    }
  }
  w.superblock_.version = opts.version;
  w.superblock_.replica_placement = opts.replica_placement;
  w.superblock_.ttl_count = opts.ttl_count;
  w.superblock_.ttl_unit = opts.ttl_unit;
  w.superblock_.compaction_revision = opts.compaction_revision;
  w.superblock_.extra = opts.superblock_extra;
  w.offset_width_ = opts.offset_width;

  // Order matters to a watcher: discovery needs the `.idx`, so it is created last, after the
  // `.vif` (which tells the offset width) and the `.dat` with its superblock exist.
  std::vector<std::filesystem::path> created;
  auto fail = [&created](Status s) {
    for (const auto& p : created) {
      std::error_code ec;
      std::filesystem::remove(p, ec);
    }
    return Error(std::move(s));
  };
  auto create = [&created](const std::filesystem::path& p) -> Result<int> {
    const int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      return Error(Code::kIOError, fmt::format("creating {}: {}; check that the directory exists "
                                               "and is writable",
                                               p.string(), Errno()));
    }
    created.push_back(p);
    return fd;
  };
  if (w.files_.vif) {
    const std::string vif = VifJson(w.superblock_, w.offset_width_);
    auto fd = create(*w.files_.vif);
    if (!fd) return fail(fd.error());
    const Status s = WriteFull(
        *fd, std::span(reinterpret_cast<const uint8_t*>(vif.data()), vif.size()), 0, *w.files_.vif);
    ::close(*fd);
    if (!s.ok()) return fail(s);
  }
  auto dat_fd = create(w.files_.dat);
  if (!dat_fd) return fail(dat_fd.error());
  w.dat_fd_ = *dat_fd;
  const std::vector<uint8_t> sb = EncodeSuperBlock(w.superblock_);
  if (Status s = WriteFull(w.dat_fd_, sb, 0, w.files_.dat); !s.ok()) return fail(s);
  w.dat_size_ = sb.size();
  auto idx_fd = create(w.files_.idx);
  if (!idx_fd) return fail(idx_fd.error());
  w.idx_fd_ = *idx_fd;
  return w;
}

Result<VolumeWriter> VolumeWriter::Open(const VolumeFiles& files, OffsetWidth fallback) {
  VolumeWriter w;
  w.files_ = files;
  SWRDMA_ASSIGN_OR_RETURN(w.offset_width_, VolumeOffsetWidth(files, fallback));
  w.dat_fd_ = ::open(files.dat.c_str(), O_RDWR | O_CLOEXEC);
  if (w.dat_fd_ < 0) {
    return Error(Code::kIOError,
                 fmt::format("opening {} for appending: {}", files.dat.string(), Errno()));
  }
  w.idx_fd_ = ::open(files.idx.c_str(), O_RDWR | O_CLOEXEC);
  if (w.idx_fd_ < 0) {
    return Error(Code::kIOError,
                 fmt::format("opening {} for appending: {}", files.idx.string(), Errno()));
  }
  SWRDMA_ASSIGN_OR_RETURN(const uint64_t dat_size, FileSize(w.dat_fd_, files.dat));
  std::vector<uint8_t> head(std::min<uint64_t>(dat_size, kSuperBlockSize + 0xFFFF));
  SWRDMA_RETURN_IF_ERROR(ReadFull(w.dat_fd_, head, 0, files.dat));
  auto sb = ParseSuperBlock(head);
  if (!sb) return Error(sb.error().WithContext(files.dat.string()));
  w.superblock_ = std::move(*sb);
  // The volume server appends at the 8-byte aligned end, whatever the length is now.
  w.dat_size_ = AlignUp8(std::max<uint64_t>(dat_size, w.superblock_.data_start()));

  SWRDMA_ASSIGN_OR_RETURN(w.idx_size_, FileSize(w.idx_fd_, files.idx));
  const size_t entry_size = IdxEntrySize(w.offset_width_);
  if (w.idx_size_ % entry_size != 0) {
    return Error(Code::kCorruption,
                 fmt::format("{}: {} bytes is not a multiple of the {}-byte entry size; the "
                             "volume server refuses such an index too (damaged tail?)",
                             files.idx.string(), w.idx_size_, entry_size));
  }
  uint64_t records_end = w.superblock_.data_start();
  const NeedleVersion version = w.superblock_.version;
  auto& live = w.live_;
  SWRDMA_ASSIGN_OR_RETURN(
      const IdxScanStats stats, ScanIdxFile(files.idx, w.offset_width_, 0, [&](const IdxEntry& e) {
        if (e.offset != 0) {
          const uint32_t size = e.is_deletion() ? 0 : e.size;
          records_end = std::max(records_end, e.offset + NeedleRecordLength(size, version));
        }
        if (e.is_deletion()) {
          live.erase(e.needle_id);
        } else {
          live[e.needle_id] = e.offset;
        }
      }));
  w.idx_size_ = stats.consumed_bytes;  // the next entry goes right after the last whole one
  if (records_end > AlignUp8(dat_size)) {
    return Error(Code::kCorruption,
                 fmt::format("{} points to records up to byte {} but {} has only {} bytes",
                             files.idx.string(), records_end, files.dat.string(), dat_size));
  }
  return w;
}

uint64_t VolumeWriter::NextAppendAtNs(uint64_t requested) {
  uint64_t ns = requested;
  if (ns == 0) {
    ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
    // Strictly increasing, as the volume server keeps it (incremental sync relies on it).
    if (ns <= last_append_at_ns_) ns = last_append_at_ns_ + 1;
  }
  last_append_at_ns_ = std::max(last_append_at_ns_, ns);
  return ns;
}

Result<IdxEntry> VolumeWriter::AppendRecord(std::span<const uint8_t> record, uint64_t needle_id,
                                            uint32_t idx_size_field) {
  const uint64_t offset = dat_size_;
  if (offset + record.size() > MaxOffset(offset_width_)) {
    return Error(Code::kResourceExhausted,
                 fmt::format("{} is full: a record at byte {} does not fit {}-byte offsets; "
                             "start a new volume",
                             files_.dat.string(), offset, static_cast<int>(offset_width_)));
  }
  if (Status s = WriteFull(dat_fd_, record, offset, files_.dat); !s.ok()) {
    // Leave no half record behind, as the volume server truncates after a failed write.
    if (::ftruncate(dat_fd_, static_cast<off_t>(offset)) != 0) {
      return Error(s.WithContext("and truncating back failed too"));
    }
    return Error(s);
  }
  dat_size_ = offset + record.size();

  IdxEntry entry{needle_id, offset, idx_size_field};
  std::vector<uint8_t> encoded;
  encoded.reserve(IdxEntrySize(offset_width_));
  EncodeIdxEntry(entry, offset_width_, encoded);
  if (Status s = WriteFull(idx_fd_, encoded, idx_size_, files_.idx); !s.ok()) {
    // Without its entry the record is unreachable; drop both so the files stay consistent.
    if (::ftruncate(idx_fd_, static_cast<off_t>(idx_size_)) == 0 &&
        ::ftruncate(dat_fd_, static_cast<off_t>(offset)) == 0) {
      dat_size_ = offset;
    }
    return Error(s);
  }
  idx_size_ += encoded.size();
  return entry;
}

Result<IdxEntry> VolumeWriter::Append(const NeedleSpec& spec) {
  if (spec.data.empty()) {
    return Error(Code::kInvalidArgument,
                 fmt::format("needle {:x}: empty data would be read back as a deletion; call "
                             "Delete to delete a needle",
                             spec.id));
  }
  if (auto it = live_.find(spec.id); it != live_.end()) {
    std::array<uint8_t, kNeedleHeaderSize> head{};
    SWRDMA_RETURN_IF_ERROR(ReadFull(dat_fd_, head, it->second, files_.dat));
    const uint32_t cookie = LoadBe32(head.data());
    if (cookie != spec.cookie) {
      return Error(Code::kInvalidArgument,
                   fmt::format("needle {:x}: overwrite with cookie {:08x} refused, the stored "
                               "needle has cookie {:08x} (as the volume server refuses it)",
                               spec.id, spec.cookie, cookie));
    }
  }
  NeedleSpec with_time = spec;
  with_time.append_at_ns = NextAppendAtNs(spec.append_at_ns);
  scratch_.clear();
  SWRDMA_RETURN_IF_ERROR(EncodeNeedle(with_time, superblock_.version, scratch_));
  const uint32_t size = LoadBe32(scratch_.data() + 12);
  SWRDMA_ASSIGN_OR_RETURN(IdxEntry entry, AppendRecord(scratch_, spec.id, size));
  live_[spec.id] = entry.offset;
  return entry;
}

Status VolumeWriter::Delete(uint64_t needle_id, uint32_t cookie) {
  auto it = live_.find(needle_id);
  if (it == live_.end()) {
    return Status(Code::kNotFound, fmt::format("deleting needle {:x} from {}: not live", needle_id,
                                               files_.dat.string()));
  }
  // The volume server reads the needle to check the cookie, then appends that same needle with
  // its data dropped: the tombstone keeps the stored checksum.
  std::array<uint8_t, kNeedleHeaderSize> head{};
  SWRDMA_RETURN_IF_ERROR(ReadFull(dat_fd_, head, it->second, files_.dat));
  const uint32_t stored_cookie = LoadBe32(head.data());
  if (stored_cookie != cookie) {
    return Status(Code::kNotFound,
                  fmt::format("deleting needle {:x}: cookie {:08x} does not match the stored "
                              "{:08x}",
                              needle_id, cookie, stored_cookie));
  }
  const uint32_t stored_size = LoadBe32(head.data() + 12);
  std::array<uint8_t, kNeedleChecksumSize> checksum{};
  SWRDMA_RETURN_IF_ERROR(
      ReadFull(dat_fd_, checksum, it->second + kNeedleHeaderSize + stored_size, files_.dat));

  NeedleSpec tombstone;
  tombstone.id = needle_id;
  tombstone.cookie = cookie;
  tombstone.append_at_ns = NextAppendAtNs(0);
  scratch_.clear();
  SWRDMA_RETURN_IF_ERROR(EncodeNeedle(tombstone, superblock_.version, scratch_));
  std::copy(checksum.begin(), checksum.end(), scratch_.begin() + kNeedleHeaderSize);
  SWRDMA_ASSIGN_OR_RETURN(IdxEntry entry, AppendRecord(scratch_, needle_id, kTombstoneSize));
  (void)entry;
  live_.erase(it);
  return Status::Ok();
}

Status VolumeWriter::Sync() {
  if (::fdatasync(dat_fd_) != 0) {
    return Status(Code::kIOError, fmt::format("syncing {}: {}", files_.dat.string(), Errno()));
  }
  if (::fdatasync(idx_fd_) != 0) {
    return Status(Code::kIOError, fmt::format("syncing {}: {}", files_.idx.string(), Errno()));
  }
  return Status::Ok();
}

}  // namespace swrdma
