#include "tests/tools/chaos_manifest.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

namespace swrdma::chaos {

namespace {

std::string Errno() {
  return std::strerror(errno);
}

std::vector<std::string_view> SplitTabs(std::string_view line) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (true) {
    const size_t tab = line.find('\t', pos);
    out.push_back(line.substr(pos, tab == std::string_view::npos ? tab : tab - pos));
    if (tab == std::string_view::npos) return out;
    pos = tab + 1;
  }
}

template <typename T>
bool ParseNumber(std::string_view s, T& out, int base = 10) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

uint64_t NowUnixNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

Result<ManifestWriter> ManifestWriter::Open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Error(Code::kIOError,
                 fmt::format("opening the manifest {} for appending: {}", path.string(), Errno()));
  }
  return ManifestWriter(fd, path);
}

ManifestWriter::ManifestWriter(ManifestWriter&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

ManifestWriter& ManifestWriter::operator=(ManifestWriter&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

ManifestWriter::~ManifestWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Status ManifestWriter::Line(const std::string& line) {
  // One write per line: with O_APPEND, lines of concurrent writers never interleave.
  const ssize_t n = ::write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    return Status(Code::kIOError, fmt::format("appending to the manifest {}: {}", path_.string(),
                                              n < 0 ? Errno() : "short write"));
  }
  return Status::Ok();
}

Status ManifestWriter::Put(const FileId& fid, uint64_t size, uint32_t crc, bool gzipped) {
  return Line(fmt::format("put\t{}\t{}\t{}\t{:08x}\t{}\n", NowUnixNs(), FormatFileId(fid), size,
                          crc, gzipped ? "gzip" : "plain"));
}
Status ManifestWriter::Deleted(const FileId& fid) {
  return Line(fmt::format("del\t{}\t{}\n", NowUnixNs(), FormatFileId(fid)));
}
Status ManifestWriter::Cut(const FileId& fid) {
  return Line(fmt::format("cut\t{}\t{}\n", NowUnixNs(), FormatFileId(fid)));
}
Status ManifestWriter::Removed(uint32_t vid) {
  return Line(fmt::format("rm\t{}\t{}\n", NowUnixNs(), vid));
}
Status ManifestWriter::Created(uint32_t vid) {
  return Line(fmt::format("new\t{}\t{}\n", NowUnixNs(), vid));
}
Status ManifestWriter::Vacuumed(uint32_t vid, uint16_t revision, uint64_t live) {
  return Line(fmt::format("vac\t{}\t{}\t{}\t{}\n", NowUnixNs(), vid, revision, live));
}

Status ManifestReader::Refresh() {
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status(Code::kIOError,
                  fmt::format("opening the manifest {}: {}", path_.string(), Errno()));
  }
  std::string chunk(1 << 16, '\0');
  Status status;
  while (true) {
    const ssize_t n = ::pread(fd, chunk.data(), chunk.size(), static_cast<off_t>(offset_));
    if (n < 0) {
      if (errno == EINTR) continue;
      status = Status(Code::kIOError,
                      fmt::format("reading the manifest {}: {}", path_.string(), Errno()));
      break;
    }
    if (n == 0) break;
    offset_ += static_cast<uint64_t>(n);
    partial_.append(chunk.data(), static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
      status = Apply(std::string_view(partial_).substr(start, nl - start));
      if (!status.ok()) break;
    }
    partial_.erase(0, start);
    if (!status.ok()) break;
  }
  ::close(fd);
  return status;
}

const KnownNeedle* ManifestReader::Find(const std::string& fid) const {
  auto it = by_fid_.find(fid);
  return it == by_fid_.end() ? nullptr : &needles_[it->second];
}

uint64_t ManifestReader::MaxNeedleId(uint32_t vid) const {
  auto it = max_id_.find(vid);
  return it == max_id_.end() ? 0 : it->second;
}

void ManifestReader::MarkGone(size_t i) {
  auto it = live_pos_.find(i);
  if (it == live_pos_.end()) return;
  // Swap-remove from the live list.
  const size_t pos = it->second;
  const size_t last = live_.back();
  live_[pos] = last;
  live_pos_[last] = pos;
  live_.pop_back();
  live_pos_.erase(i);
  gone_.push_back(i);
}

Status ManifestReader::Apply(std::string_view line) {
  auto bad = [&] {
    return Status(Code::kCorruption,
                  fmt::format("{}: malformed manifest line '{}'", path_.string(), line));
  };
  const auto f = SplitTabs(line);
  if (f.size() < 3) return bad();
  uint64_t ns = 0;
  if (!ParseNumber(f[1], ns)) return bad();
  if (f[0] == "put") {
    if (f.size() != 6) return bad();
    auto fid = ParseFileId(f[2]);
    KnownNeedle n;
    if (!fid || !ParseNumber(f[3], n.size) || !ParseNumber(f[4], n.crc, 16)) return bad();
    n.fid = std::string(f[2]);
    n.volume_id = fid->volume_id;
    n.needle_id = fid->needle_id;
    n.put_ns = ns;
    if (by_fid_.contains(n.fid)) return Status::Ok();  // a re-put of the same fid: keep the first
    const size_t i = needles_.size();
    by_fid_[n.fid] = i;
    by_volume_[n.volume_id].push_back(i);
    auto& max = max_id_[n.volume_id];
    max = std::max(max, n.needle_id);
    needles_.push_back(std::move(n));
    live_pos_[i] = live_.size();
    live_.push_back(i);
    return Status::Ok();
  }
  if (f[0] == "del" || f[0] == "cut") {
    auto it = by_fid_.find(std::string(f[2]));
    if (it == by_fid_.end()) return Status::Ok();  // a needle this manifest never saw put
    KnownNeedle& n = needles_[it->second];
    if (f[0] == "cut") {
      n.cut = true;
    } else if (n.gone_ns == 0) {
      n.gone_ns = ns;
    }
    MarkGone(it->second);
    return Status::Ok();
  }
  if (f[0] == "rm") {
    uint32_t vid = 0;
    if (!ParseNumber(f[2], vid)) return bad();
    for (size_t i : by_volume_[vid]) {
      if (needles_[i].gone_ns == 0) needles_[i].gone_ns = ns;
      MarkGone(i);
    }
    return Status::Ok();
  }
  if (f[0] == "new" || f[0] == "vac") return Status::Ok();
  return bad();
}

}  // namespace swrdma::chaos
