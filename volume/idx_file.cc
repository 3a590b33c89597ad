#include "volume/idx_file.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "protocol/byte_order.h"

namespace swrdma {

namespace {

// Entries per read in ScanIdxFile: 64 Ki entries (1 MiB of 16-byte entries) bounds memory while
// keeping the number of system calls low on multi-GB files.
constexpr size_t kEntriesPerChunk = size_t{1} << 16;

// Closes the descriptor on every return path.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

IdxEntry DecodeIdxEntry(const uint8_t* p, OffsetWidth w) {
  IdxEntry e;
  e.needle_id = LoadBe64(p);
  uint64_t units = LoadBe32(p + 8);
  if (w == OffsetWidth::k5) {
    units |= uint64_t{p[12]} << 32;
    e.size = LoadBe32(p + 13);
  } else {
    e.size = LoadBe32(p + 12);
  }
  e.offset = units * kIdxOffsetUnit;
  return e;
}

void EncodeIdxEntry(const IdxEntry& e, OffsetWidth w, std::vector<uint8_t>& out) {
  const size_t start = out.size();
  out.resize(start + IdxEntrySize(w));
  uint8_t* p = out.data() + start;
  const uint64_t units = e.offset / kIdxOffsetUnit;
  StoreBe64(p, e.needle_id);
  StoreBe32(p + 8, static_cast<uint32_t>(units));
  if (w == OffsetWidth::k5) {
    p[12] = static_cast<uint8_t>(units >> 32);
    StoreBe32(p + 13, e.size);
  } else {
    StoreBe32(p + 12, e.size);
  }
}

IdxScanStats ScanIdx(std::span<const uint8_t> bytes, OffsetWidth w,
                     const std::function<void(const IdxEntry&)>& visit) {
  const size_t entry_size = IdxEntrySize(w);
  IdxScanStats stats;
  const size_t whole = bytes.size() / entry_size;
  for (size_t i = 0; i < whole; ++i) {
    const IdxEntry e = DecodeIdxEntry(bytes.data() + i * entry_size, w);
    ++stats.entries;
    if (e.is_deletion()) ++stats.deletions;
    visit(e);
  }
  stats.consumed_bytes = whole * entry_size;
  stats.damaged_tail_bytes = bytes.size() - stats.consumed_bytes;
  return stats;
}

Result<IdxScanStats> ScanIdxFile(const std::filesystem::path& path, OffsetWidth w, uint64_t from,
                                 const std::function<void(const IdxEntry&)>& visit) {
  const size_t entry_size = IdxEntrySize(w);
  if (from % entry_size != 0) {
    return Error(Code::kInvalidArgument,
                 fmt::format("reading {}: start position {} is not a multiple of the {}-byte entry "
                             "size",
                             path.string(), from, entry_size));
  }
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return Error(Code::kIOError, fmt::format("opening {}: {}; check that the volume's .idx exists "
                                             "and is readable",
                                             path.string(), std::strerror(errno)));
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) {
    return Error(Code::kIOError, fmt::format("stat {}: {}", path.string(), std::strerror(errno)));
  }
  const uint64_t end = static_cast<uint64_t>(st.st_size);
  if (from > end) {
    return Error(Code::kInvalidArgument,
                 fmt::format("reading {}: start position {} is past its end ({} bytes); the file "
                             "was truncated or replaced (vacuum?), rescan it from 0",
                             path.string(), from, end));
  }

  // Only the size seen at open is read: an appending writer may add entries meanwhile, the
  // caller continues from consumed position next time.
  IdxScanStats total;
  std::vector<uint8_t> buf(kEntriesPerChunk * entry_size);
  uint64_t pos = from;
  while (pos < end) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - pos));
    size_t got = 0;
    while (got < want) {
      const ssize_t n =
          ::pread(fd.get(), buf.data() + got, want - got, static_cast<off_t>(pos + got));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error(Code::kIOError, fmt::format("reading {} at byte {}: {}", path.string(),
                                                 pos + got, std::strerror(errno)));
      }
      if (n == 0) break;  // shrank under us: use what we have
      got += static_cast<size_t>(n);
    }
    const IdxScanStats chunk = ScanIdx(std::span<const uint8_t>(buf.data(), got), w, visit);
    total.entries += chunk.entries;
    total.deletions += chunk.deletions;
    total.consumed_bytes += chunk.consumed_bytes;
    pos += chunk.consumed_bytes;
    if (got < want || chunk.damaged_tail_bytes != 0) {
      // Only the last chunk can hold a partial entry (chunks are whole multiples of the entry
      // size), or the file shrank while reading.
      total.damaged_tail_bytes = chunk.damaged_tail_bytes;
      break;
    }
  }
  return total;
}

}  // namespace swrdma
