// One volume as swrdma-volume-chaos changes it: what a SeaweedFS volume server does to a volume
// (append, delete, vacuum, remove and re-create) plus the fault a failed write leaves (a `.dat`
// cut in the middle of its last record). Every change is recorded in the manifest.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>

#include "protocol/status.h"
#include "tests/tools/chaos_manifest.h"
#include "volume/volume_writer.h"

namespace swrdma::chaos {

struct NeedleShape {
  uint64_t min_size = 1;
  uint64_t max_size = 64 << 10;  // drawn log-uniformly between the two: many small, some large
  double gzip_fraction = 0.2;    // stored gzip-compressed (compressible text)
};

class ChaosVolume {
 public:
  // Opens the volume `<dir>/<vid>.dat` (creating it when it does not exist). New needle ids start
  // above every id in its `.idx` and `first_needle_id`, so ids are never reused. `stage` is a
  // directory on the same file system for vacuum (created when needed).
  static Result<ChaosVolume> OpenOrCreate(const std::filesystem::path& dir, uint32_t vid,
                                          std::filesystem::path stage, uint64_t first_needle_id,
                                          uint64_t seed);

  uint32_t volume_id() const { return vid_; }
  size_t live() const { return live_.size(); }
  uint64_t next_needle_id() const { return next_id_; }

  // Appends one needle of a random shape and records it ("put").
  Status AppendOne(const NeedleShape& shape, ManifestWriter& manifest);
  // Deletes up to `count` random live needles ("del"); returns how many.
  Result<size_t> DeleteRandom(size_t count, ManifestWriter& manifest);
  // Rewrites the live needles into a new volume with compaction revision + 1 in the stage
  // directory, then renames it over `.vif`, `.dat` and `.idx` (that order, as the volume server
  // commits a compaction) and continues appending to it ("vac"). Records that no longer verify
  // (cut ones) are left out.
  Status Vacuum(ManifestWriter& manifest);
  // Cuts the `.dat` in the middle of its last live record ("cut" for that needle). The writer goes
  // on appending at its old end, leaving a hole of zeros. kNotFound if nothing is live.
  Status TruncateLast(ManifestWriter& manifest);
  // Removes `.dat`, `.idx` and `.vif` ("rm"); after `pause` creates an empty volume with the same
  // id ("new") unless `recreate` is false (then the object is closed: only Close/dtor remain).
  Status Remove(bool recreate, std::chrono::milliseconds pause, ManifestWriter& manifest);

  ChaosVolume(ChaosVolume&&) noexcept = default;
  ChaosVolume& operator=(ChaosVolume&&) noexcept = default;

 private:
  struct Live {
    uint32_t cookie = 0;
    uint64_t offset = 0;
    uint32_t size = 0;  // header size field
  };
  ChaosVolume(std::filesystem::path dir, uint32_t vid, std::filesystem::path stage, uint64_t seed)
      : dir_(std::move(dir)), vid_(vid), stage_(std::move(stage)), rng_(seed) {}
  Status Create(uint16_t revision);
  Status LoadExisting();
  Status Writable() const;
  // The needle's cookie (read from its record header the first time).
  Result<uint32_t> CookieOf(uint64_t id, Live& where) const;
  uint64_t RandomLiveId();

  std::filesystem::path dir_;
  uint32_t vid_ = 0;
  std::filesystem::path stage_;
  std::mt19937_64 rng_;
  std::optional<VolumeWriter> writer_;
  std::map<uint64_t, Live> live_;  // needle id -> where; ordered, so vacuum copies in id order
  uint64_t next_id_ = 1;
  std::string append_error_;  // why writer_ is empty
};

}  // namespace swrdma::chaos
