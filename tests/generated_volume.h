// A generated volume (volume/volume_generator.h) together with what each of its needles must
// read back as, for tests that compare reads byte for byte.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/file_id.h"
#include "volume/volume_generator.h"

namespace swrdma::testing {

struct ExpectedNeedle {
  std::vector<uint8_t> data;  // decompressed
  bool gzipped = false;       // stored gzip-compressed
  bool deleted = false;
};
using ExpectedNeedles = std::map<std::string, ExpectedNeedle>;  // by fid

// Writes the volume `options` describes and adds every needle's expected data to `out` (by fid).
// A generation error fails the calling test and returns an empty report.
inline GenerateReport GenerateExpected(GenerateOptions options, ExpectedNeedles& out) {
  options.record_needles = true;
  auto report = GenerateVolume(options, {});
  if (!report) {
    ADD_FAILURE() << "generating volume " << options.volume_id << ": " << report.error().ToString();
    return {};
  }
  for (const auto& n : report->needles) {
    out[FormatFileId(n.fid)] = {
        GeneratedNeedleData(options.seed, n.fid.needle_id, n.size, n.gzipped), n.gzipped,
        n.deleted};
  }
  return *report;
}

}  // namespace swrdma::testing
