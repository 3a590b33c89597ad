// Finding volumes in a directory: `[<collection>_]<vid>.dat` with its `<...>.idx` and optional
// `.vif` (protojson VolumeInfo; its `bytesOffset` says 4- or 5-byte `.idx` offsets).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "protocol/status.h"
#include "volume/idx_file.h"

namespace swrdma {

struct VolumeFiles {
  uint32_t volume_id = 0;
  std::string collection;  // empty for the default collection
  std::filesystem::path dat;
  std::filesystem::path idx;
  std::optional<std::filesystem::path> vif;

  // "<collection>_<vid>" or "<vid>": the base name SeaweedFS uses.
  std::string base_name() const;
};

// Splits a base name ("pics_7", "7") into collection and volume id; nullopt if it is not one.
std::optional<std::pair<std::string, uint32_t>> ParseVolumeBaseName(const std::string& base);
// The same for a volume file's path ("pics_7.dat", "7.ecx"); a name that is not one adds a
// warning naming the file ("skipping ...: rename it to serve it") and gives nullopt.
std::optional<std::pair<std::string, uint32_t>> ParseVolumeFileName(
    const std::filesystem::path& path, std::vector<std::string>& warnings);

struct DiscoveryReport {
  std::vector<VolumeFiles> volumes;   // sorted by volume id
  std::vector<std::string> warnings;  // e.g. ".dat without .idx", "duplicate volume id 7"
};

// Lists the volumes in `dir` (not recursive). A `.dat` without `.idx` is skipped with a warning
// (the volume server is still creating it, or it is an EC shard set); so is a second file with a
// volume id already seen. kIOError if `dir` cannot be read.
Result<DiscoveryReport> DiscoverVolumes(const std::filesystem::path& dir);

// The offset width for a volume: `.vif` `bytesOffset` when present and valid, else `fallback`.
// kCorruption if the `.vif` exists but is not valid JSON or names a width other than 4 or 5.
Result<OffsetWidth> VolumeOffsetWidth(const VolumeFiles& v, OffsetWidth fallback);

}  // namespace swrdma
