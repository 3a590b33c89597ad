// Deterministic synthetic volumes for tests, benchmarks and `swrdma mkvolume`: the same options
// give the same needle ids, cookies, sizes and data, so a reader can recompute what every needle
// must contain (GeneratedNeedleData) without storing it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "protocol/file_id.h"
#include "protocol/needle.h"
#include "protocol/status.h"
#include "volume/idx_file.h"

namespace swrdma {

// The uncompressed data of needle `needle_id` in a volume generated with `seed`: random bytes,
// or text-like words when `compressible` (that is what gzip-compressed needles hold).
std::vector<uint8_t> GeneratedNeedleData(uint64_t seed, uint64_t needle_id, size_t size,
                                         bool compressible);

struct GenerateOptions {
  std::filesystem::path dir;  // must exist
  uint32_t volume_id = 1;
  std::string collection;
  uint64_t needles = 0;
  uint64_t min_size = 1024;  // uncompressed data size, uniform in [min_size, max_size]; >= 1
  uint64_t max_size = 1024;
  NeedleVersion version = NeedleVersion::kV3;  // 2 or 3
  double gzip_fraction = 0;    // share of needles whose data is stored gzip-compressed
  double delete_fraction = 0;  // share deleted after all are written
  bool legacy_crc = false;     // store checksums in the pre-3.09 Value() form
  OffsetWidth offset_width = OffsetWidth::k4;
  uint64_t seed = 1;
  uint64_t first_needle_id = 1;  // ids are first_needle_id, first_needle_id + 1, ...
  uint8_t replica_placement = 0;
  // List every needle in the report (costs ~48 bytes per needle; off for huge volumes).
  bool record_needles = true;
};

struct GeneratedNeedle {
  FileId fid;
  uint64_t size = 0;         // uncompressed data size
  uint64_t stored_size = 0;  // data bytes in the record (the gzip stream when gzipped)
  uint64_t offset = 0;       // record offset in the .dat
  bool gzipped = false;
  bool deleted = false;
};

struct GenerateReport {
  std::filesystem::path dat;
  std::filesystem::path idx;
  std::vector<GeneratedNeedle> needles;  // in write order; empty unless record_needles
  uint64_t written = 0;
  uint64_t gzipped = 0;
  uint64_t deleted = 0;
  uint64_t data_bytes = 0;    // sum of uncompressed sizes
  uint64_t stored_bytes = 0;  // sum of stored data sizes
  uint64_t dat_size = 0;
  uint64_t idx_size = 0;
};

struct GenerateProgress {
  uint64_t written = 0;  // needles appended so far
  uint64_t deleted = 0;  // deletions appended so far
  uint64_t total = 0;    // needles to write
  uint64_t dat_size = 0;
};

// Creates the volume and fills it. The callback (may be empty) runs after every append and
// deletion; it should rate-limit its own output. kInvalidArgument for inconsistent options.
Result<GenerateReport> GenerateVolume(const GenerateOptions& opts,
                                      const std::function<void(const GenerateProgress&)>& progress);

}  // namespace swrdma
