// Appends needles to a SeaweedFS volume the way a volume server does, so tests, benchmarks and
// `swrdma mkvolume` produce volumes indistinguishable from real ones:
//   - the record goes to `.dat` at its 8-byte aligned end first, then the `.idx` entry, so a
//     concurrent reader never sees an entry before the bytes it points to are complete;
//   - a failed `.dat` write is truncated back, as the volume server does;
//   - a deletion appends a size-0 record (same id and cookie, carrying the deleted record's
//     checksum, as the volume server's reused needle does) and an `.idx` entry with the
//     tombstone's own offset and size 0xFFFFFFFF (what healthy_volume.idx holds);
//   - AppendAtNs (v3) is wall-clock nanoseconds, strictly increasing within the volume.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocol/needle.h"
#include "protocol/status.h"
#include "volume/idx_file.h"
#include "volume/superblock.h"
#include "volume/volume_files.h"

namespace swrdma {

struct VolumeWriterOptions {
  std::filesystem::path dir;  // must exist
  uint32_t volume_id = 0;
  std::string collection;  // empty: default collection, files are "<vid>.dat"
  NeedleVersion version = NeedleVersion::kV3;
  OffsetWidth offset_width = OffsetWidth::k4;
  uint8_t replica_placement = 0;  // the byte: 2 means "002"
  uint16_t compaction_revision = 0;
  uint8_t ttl_count = 0;
  uint8_t ttl_unit = 0;
  std::vector<uint8_t> superblock_extra;  // raw SuperBlockExtra protobuf, usually empty
  // Writes `<base>.vif` (protojson VolumeInfo with version, replication and bytesOffset), as
  // current volume servers do; readers need it to know a volume has 5-byte offsets.
  bool write_vif = true;
};

class VolumeWriter {
 public:
  // Creates a new volume: writes the superblock (and `.vif`). kInvalidArgument if any of the
  // volume's files already exists; kIOError naming the path if creation fails.
  static Result<VolumeWriter> Create(const VolumeWriterOptions& opts);

  // Continues appending to an existing volume: reads its superblock, takes the offset width from
  // its `.vif` (else `fallback`) and replays its `.idx` so Delete can find live needles.
  // kCorruption if the superblock or the `.idx` is damaged.
  static Result<VolumeWriter> Open(const VolumeFiles& files,
                                   OffsetWidth fallback = OffsetWidth::k4);

  VolumeWriter(VolumeWriter&& other) noexcept;
  VolumeWriter& operator=(VolumeWriter&& other) noexcept;
  VolumeWriter(const VolumeWriter&) = delete;
  VolumeWriter& operator=(const VolumeWriter&) = delete;
  ~VolumeWriter();

  // Appends one needle; returns its `.idx` entry (offset in bytes, header size). A needle id
  // that is live already is overwritten, as an upload to the same fid is, but only with the same
  // cookie (kInvalidArgument otherwise, as the volume server refuses it). Empty data is
  // kInvalidArgument (it would read back as a tombstone); use Delete. spec.append_at_ns 0 means
  // "now". kResourceExhausted when the offset no longer fits the offset width.
  Result<IdxEntry> Append(const NeedleSpec& spec);

  // Deletes a live needle: kNotFound if it is not live, or if `cookie` is not its cookie.
  Status Delete(uint64_t needle_id, uint32_t cookie);

  // fdatasync of `.dat`, then `.idx`.
  Status Sync();

  uint64_t dat_size() const { return dat_size_; }
  uint64_t idx_size() const { return idx_size_; }
  uint64_t live_needles() const { return live_.size(); }
  const SuperBlock& superblock() const { return superblock_; }
  NeedleVersion version() const { return superblock_.version; }
  OffsetWidth offset_width() const { return offset_width_; }
  const VolumeFiles& files() const { return files_; }

 private:
  VolumeWriter() = default;
  void Close();
  // Writes `record` at the aligned end of `.dat`, then its `.idx` entry.
  Result<IdxEntry> AppendRecord(std::span<const uint8_t> record, uint64_t needle_id,
                                uint32_t idx_size_field);
  uint64_t NextAppendAtNs(uint64_t requested);

  VolumeFiles files_;
  SuperBlock superblock_;
  OffsetWidth offset_width_ = OffsetWidth::k4;
  int dat_fd_ = -1;
  int idx_fd_ = -1;
  uint64_t dat_size_ = 0;
  uint64_t idx_size_ = 0;
  uint64_t last_append_at_ns_ = 0;
  std::unordered_map<uint64_t, uint64_t> live_;  // needle id -> record offset in bytes
  std::vector<uint8_t> scratch_;                 // reused record buffer
};

}  // namespace swrdma
