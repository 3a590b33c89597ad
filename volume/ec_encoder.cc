// EncodeEcVolume: what `weed shell ec.encode` leaves on the volume server (VolumeEcShardsGenerate:
// WriteSortedFileFromIdx, WriteEcFiles, SaveVolumeInfo), for tests and `swrdma mkvolume --ec`.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "volume/ec_codec.h"
#include "volume/ec_volume.h"
#include "volume/idx_replay.h"
#include "volume/superblock.h"

namespace swrdma::ec {

namespace fs = std::filesystem;

namespace {

// weed's encoder buffer per shard: bounds memory at (data + parity) x 256 KiB for any volume.
constexpr uint64_t kChunkSize = 256 * 1024;

class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(ScopedFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  ScopedFd& operator=(ScopedFd&&) = delete;
  int get() const { return fd_; }
  // close(2) reports delayed write errors (e.g. NFS, quota), so the writer checks it.
  int Close() { return ::close(std::exchange(fd_, -1)); }

 private:
  int fd_;
};

Status IoError(std::string_view what, const fs::path& path, int err) {
  return Status(Code::kIOError, fmt::format("{} {}: {}; check the path, permissions and free space",
                                            what, path.string(), std::strerror(err)));
}

Result<ScopedFd> CreateFile(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Error(IoError("creating", path, errno));
  return ScopedFd(fd);
}

Status WriteAll(int fd, const uint8_t* p, size_t n, const fs::path& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return IoError("writing", path, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status WriteWholeFile(const fs::path& path, std::span<const uint8_t> bytes) {
  SWRDMA_ASSIGN_OR_RETURN(ScopedFd fd, CreateFile(path));
  SWRDMA_RETURN_IF_ERROR(WriteAll(fd.get(), bytes.data(), bytes.size(), path));
  if (fd.Close() != 0) return IoError("closing", path, errno);
  return Status::Ok();
}

// Reads up to `n` bytes at `offset`; fewer only at the end of the file.
Result<size_t> ReadAt(int fd, uint8_t* p, size_t n, uint64_t offset, const fs::path& path) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, p + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error(IoError("reading", path, errno));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

// weed's WriteSortedFileFromIdx: replay the .idx (a later entry wins, a deletion removes the
// needle) and write the live entries ascending by id. Deleted needles are absent from the .ecx,
// not tombstoned: only runtime deletions after encoding go to the .ecj.
Status WriteEcx(const fs::path& idx, const fs::path& ecx, OffsetWidth width) {
  SWRDMA_ASSIGN_OR_RETURN(IdxTail tail, ReadIdxTail(idx, width, 0));
  ReplayLastWins(tail.entries);
  std::vector<uint8_t> out;
  out.reserve(tail.entries.size() * IdxEntrySize(width));
  for (const IdxEntry& e : tail.entries) {
    if (!e.is_deletion()) EncodeIdxEntry(e, width, out);
  }
  return WriteWholeFile(ecx, out);
}

// The .vif as weed's SaveVolumeInfo writes it: protojson with EmitUnpopulated (every field,
// 64-bit integers as strings), fields in proto order.
std::string VolumeInfoJson(NeedleVersion version, uint64_t dat_size, const EcEncodeOptions& o) {
  nlohmann::ordered_json j;
  j["files"] = nlohmann::ordered_json::array();
  j["version"] = static_cast<uint32_t>(version);
  j["replication"] = "";
  // weed writes 0 here (a fresh VolumeInfo) and leaves the width to the build; we say it, so a
  // 5-byte .ecx is self-describing. weed accepts a bytesOffset equal to its own width.
  j["bytesOffset"] = static_cast<uint32_t>(o.offset_width);
  j["datFileSize"] = std::to_string(dat_size);
  j["expireAtSec"] = "0";
  j["readOnly"] = false;
  j["ecShardConfig"] = {{"dataShards", o.data_shards},
                        {"parityShards", o.parity_shards},
                        {"encodeTsNs", std::to_string(o.encode_ts_ns)}};
  if (o.uniform) j["ecShardConfig"]["blockSize"] = std::to_string(o.large_block);
  j["readOnlyCanDelete"] = false;
  return j.dump(2) + "\n";
}

// weed's encodeDatFile: rows of one large block per data shard while a whole large row remains,
// then rows of small blocks, the last one zero-padded past the end of the .dat. Shard i gets
// block i of each row; parity shard p gets parity row p of the blocks, chunk by chunk.
Status WriteShards(int dat, uint64_t dat_size, const fs::path& dat_path,
                   const std::vector<fs::path>& shard_paths, const ReedSolomonCodec& codec,
                   const EcEncodeOptions& o) {
  const uint32_t data = o.data_shards, total = o.data_shards + o.parity_shards;
  std::vector<ScopedFd> outs;
  for (const fs::path& p : shard_paths) {
    SWRDMA_ASSIGN_OR_RETURN(ScopedFd fd, CreateFile(p));
    outs.push_back(std::move(fd));
  }
  const uint64_t capacity = std::min(kChunkSize, std::max(o.large_block, o.small_block));
  std::vector<uint8_t> buffer(capacity * total);
  std::vector<uint8_t*> blocks(total);
  for (uint32_t i = 0; i < total; ++i)
    blocks[i] = buffer.data() + i * capacity;

  auto encode_row = [&](uint64_t row_start, uint64_t block) -> Status {
    const uint64_t chunk = std::min(capacity, block);
    for (uint64_t off = 0; off < block; off += chunk) {
      const size_t n = static_cast<size_t>(std::min(chunk, block - off));
      for (uint32_t i = 0; i < data; ++i) {
        const uint64_t src = row_start + i * block + off;
        size_t got = 0;
        if (src < dat_size) {
          SWRDMA_ASSIGN_OR_RETURN(got, ReadAt(dat, blocks[i], n, src, dat_path));
        }
        std::fill(blocks[i] + got, blocks[i] + n, uint8_t{0});
      }
      codec.EncodeParity(n, std::span<const uint8_t* const>(blocks.data(), data),
                         std::span<uint8_t* const>(blocks.data() + data, total - data));
      for (uint32_t i = 0; i < total; ++i) {
        SWRDMA_RETURN_IF_ERROR(WriteAll(outs[i].get(), blocks[i], n, shard_paths[i]));
      }
    }
    return Status::Ok();
  };

  const uint64_t large_row = o.large_block * data, small_row = o.small_block * data;
  uint64_t processed = 0, remaining = dat_size;
  while (remaining >= large_row) {
    SWRDMA_RETURN_IF_ERROR(encode_row(processed, o.large_block));
    remaining -= large_row;
    processed += large_row;
  }
  while (remaining > 0) {
    SWRDMA_RETURN_IF_ERROR(encode_row(processed, o.small_block));
    remaining -= std::min(remaining, small_row);
    processed += small_row;
  }
  for (uint32_t i = 0; i < total; ++i) {
    if (outs[i].Close() != 0) return IoError("closing", shard_paths[i], errno);
  }
  return Status::Ok();
}

Status Encode(const fs::path& dat_path, const fs::path& idx, const fs::path& out_base,
              const std::vector<fs::path>& shard_paths, const EcEncodeOptions& o) {
  SWRDMA_ASSIGN_OR_RETURN(const ReedSolomonCodec codec,
                          ReedSolomonCodec::Create(o.data_shards, o.parity_shards));
  // The .ecx first, as weed does: entries appended after it then only add unindexed bytes.
  SWRDMA_RETURN_IF_ERROR(WriteEcx(idx, fs::path(out_base).concat(".ecx"), o.offset_width)
                             .WithContext(fmt::format("writing the .ecx from {}", idx.string())));

  const int fd = ::open(dat_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("opening", dat_path, errno);
  ScopedFd dat(fd);
  struct stat st{};
  if (::fstat(dat.get(), &st) != 0) return IoError("stat of", dat_path, errno);
  const uint64_t dat_size = static_cast<uint64_t>(st.st_size);
  std::array<uint8_t, kSuperBlockSize> head{};
  SWRDMA_ASSIGN_OR_RETURN(const size_t head_size,
                          ReadAt(dat.get(), head.data(), head.size(), 0, dat_path));
  auto superblock = ParseSuperBlock(std::span<const uint8_t>(head.data(), head_size));
  if (!superblock) {
    return superblock.error().WithContext(
        fmt::format("{}: not a SeaweedFS volume (superblock)", dat_path.string()));
  }

  // weed's WriteEcFiles: the uniform layout is the two-tier one with both blocks set to the
  // block size this .dat gets (one stat, recorded with datFileSize in the .vif).
  EcEncodeOptions layout = o;
  if (o.uniform) {
    layout.large_block = layout.small_block = UniformBlockSize(dat_size, o.data_shards);
  }
  SWRDMA_RETURN_IF_ERROR(WriteShards(dat.get(), dat_size, dat_path, shard_paths, codec, layout));
  SWRDMA_RETURN_IF_ERROR(WriteWholeFile(fs::path(out_base).concat(".ecj"), {}));
  const std::string vif = VolumeInfoJson(superblock->version, dat_size, layout);
  return WriteWholeFile(fs::path(out_base).concat(".vif"),
                        std::span(reinterpret_cast<const uint8_t*>(vif.data()), vif.size()));
}

}  // namespace

Status EncodeEcVolume(const fs::path& dat, const fs::path& idx, const fs::path& out_dir,
                      const std::string& base_name, const EcEncodeOptions& options) {
  const EcEncodeOptions& o = options;
  if (o.data_shards == 0 || o.parity_shards == 0 || o.data_shards + o.parity_shards > kMaxShards) {
    return Status(Code::kInvalidArgument,
                  fmt::format("EC ratio {}+{}: need at least one data and one parity shard and at "
                              "most {} in all (weed's limit)",
                              o.data_shards, o.parity_shards, kMaxShards));
  }
  if (o.large_block == 0 || o.small_block == 0) {
    return Status(Code::kInvalidArgument, "EC block sizes must be positive");
  }
  const fs::path out_base = out_dir / base_name;
  std::vector<fs::path> shard_paths;
  for (uint32_t i = 0; i < o.data_shards + o.parity_shards; ++i)
    shard_paths.push_back(fs::path(out_base).concat(ShardExtension(i)));
  Status st = Encode(dat, idx, out_base, shard_paths, o);
  if (!st.ok()) {
    // As weed's VolumeEcShardsGenerate: a failed encode leaves no half set behind to be mounted.
    // The .vif is left alone: it is written last, and beside the .dat it is the volume's own.
    std::error_code ec;
    for (const fs::path& p : shard_paths)
      fs::remove(p, ec);
    for (const char* ext : {".ecx", ".ecj"})
      fs::remove(fs::path(out_base).concat(ext), ec);
    return st.WithContext(fmt::format("encoding {} as EC volume {}", dat.string(), base_name));
  }
  return Status::Ok();
}

}  // namespace swrdma::ec
