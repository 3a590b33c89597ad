// The manifest of swrdma-volume-chaos: what the simulated volume server published, so readers in
// other processes know which fids exist, what they must contain and since when they are gone.
//
// One event per line, tab-separated, written with a single write(2) on an O_APPEND descriptor (a
// reader never sees half a line from one writer, and several writers may share the file):
//   put  <unix ns>  <fid>  <size>  <crc32c 8 hex>  plain|gzip   needle published (.idx written)
//   del  <unix ns>  <fid>                                       needle deleted
//   cut  <unix ns>  <fid>                                       record truncated away (may fail)
//   rm   <unix ns>  <vid>                                       volume removed (all its fids gone)
//   new  <unix ns>  <vid>                                       volume created
//   vac  <unix ns>  <vid>  <compaction revision>  <live>       volume vacuumed
// size and crc32c are those of the needle's decompressed data; times are CLOCK_REALTIME.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocol/file_id.h"
#include "protocol/status.h"

namespace swrdma::chaos {

uint64_t NowUnixNs();

class ManifestWriter {
 public:
  // Opens (creating) `path` for appending.
  static Result<ManifestWriter> Open(const std::filesystem::path& path);
  ManifestWriter(ManifestWriter&& other) noexcept;
  ManifestWriter& operator=(ManifestWriter&& other) noexcept;
  ManifestWriter(const ManifestWriter&) = delete;
  ManifestWriter& operator=(const ManifestWriter&) = delete;
  ~ManifestWriter();

  Status Put(const FileId& fid, uint64_t size, uint32_t crc, bool gzipped);
  Status Deleted(const FileId& fid);
  Status Cut(const FileId& fid);
  Status Removed(uint32_t vid);
  Status Created(uint32_t vid);
  Status Vacuumed(uint32_t vid, uint16_t revision, uint64_t live);

 private:
  explicit ManifestWriter(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  Status Line(const std::string& line);
  int fd_ = -1;
  std::filesystem::path path_;
};

// What a reader knows about one fid.
struct KnownNeedle {
  std::string fid;
  uint32_t volume_id = 0;
  uint64_t needle_id = 0;
  uint64_t size = 0;
  uint32_t crc = 0;
  uint64_t put_ns = 0;
  uint64_t gone_ns = 0;  // deleted or its volume removed; 0 while live
  bool cut = false;      // truncated away: reads may fail (but must never return other bytes)
};

// Follows a manifest another process appends to: Refresh() reads the complete lines added since
// the last call (a trailing partial line waits for the next call).
class ManifestReader {
 public:
  explicit ManifestReader(std::filesystem::path path) : path_(std::move(path)) {}

  // kIOError if the file cannot be read; a missing file is "nothing yet" (ok).
  Status Refresh();

  const std::vector<KnownNeedle>& needles() const { return needles_; }
  const KnownNeedle* Find(const std::string& fid) const;
  // Indexes into needles(): live ones, and gone or cut ones.
  const std::vector<size_t>& live() const { return live_; }
  const std::vector<size_t>& gone() const { return gone_; }
  // Highest needle id ever put into `vid` (0 if none).
  uint64_t MaxNeedleId(uint32_t vid) const;

 private:
  Status Apply(std::string_view line);
  void MarkGone(size_t i);

  std::filesystem::path path_;
  uint64_t offset_ = 0;
  std::string partial_;
  std::vector<KnownNeedle> needles_;
  std::unordered_map<std::string, size_t> by_fid_;
  std::unordered_map<uint32_t, std::vector<size_t>> by_volume_;
  std::unordered_map<uint32_t, uint64_t> max_id_;
  std::vector<size_t> live_;
  std::unordered_map<size_t, size_t> live_pos_;  // needle index -> position in live_
  std::vector<size_t> gone_;
};

}  // namespace swrdma::chaos
