#include "volume/volume_files.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace swrdma {

namespace fs = std::filesystem;

std::string VolumeFiles::base_name() const {
  if (collection.empty()) return std::to_string(volume_id);
  return collection + "_" + std::to_string(volume_id);
}

std::optional<std::pair<std::string, uint32_t>> ParseVolumeBaseName(const std::string& base) {
  // The volume id is the run of digits after the last '_' (collections may contain '_'), as
  // SeaweedFS's parseCollectionVolumeId splits it.
  const size_t sep = base.rfind('_');
  std::string collection;
  std::string_view digits(base);
  if (sep != std::string::npos) {
    if (sep == 0) return std::nullopt;  // "_7": an empty collection name is not written so
    collection = base.substr(0, sep);
    digits.remove_prefix(sep + 1);
  }
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  uint32_t vid = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), vid);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return std::make_pair(std::move(collection), vid);
}

std::optional<std::pair<std::string, uint32_t>> ParseVolumeFileName(
    const std::filesystem::path& path, std::vector<std::string>& warnings) {
  auto parsed = ParseVolumeBaseName(path.stem().string());
  if (!parsed) {
    warnings.push_back(
        fmt::format("skipping {}: name is not [<collection>_]<volume id>{} (rename it to serve it)",
                    path.string(), path.extension().string()));
  }
  return parsed;
}

Result<DiscoveryReport> DiscoverVolumes(const fs::path& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    return Error(Code::kIOError, fmt::format("listing volume directory {}: {}; check the path "
                                             "and permissions",
                                             dir.string(), ec.message()));
  }
  // Collect .dat names first and sort them, so which of two duplicates wins does not depend on
  // directory order.
  std::vector<fs::path> dats;
  for (const fs::directory_entry& entry : it) {
    const fs::path& p = entry.path();
    if (p.extension() != ".dat") continue;
    std::error_code type_ec;
    if (!entry.is_regular_file(type_ec)) continue;  // follows symlinks
    dats.push_back(p);
  }
  std::sort(dats.begin(), dats.end());

  DiscoveryReport report;
  std::map<uint32_t, VolumeFiles> by_id;
  for (const fs::path& dat : dats) {
    const std::string base = dat.stem().string();
    auto parsed = ParseVolumeFileName(dat, report.warnings);
    if (!parsed) continue;
    VolumeFiles v;
    v.collection = std::move(parsed->first);
    v.volume_id = parsed->second;
    v.dat = dat;
    v.idx = dir / (base + ".idx");
    std::error_code exists_ec;
    if (!fs::is_regular_file(v.idx, exists_ec)) {
      report.warnings.push_back(fmt::format(
          "skipping {}: no {} beside it (volume still being created, or an EC shard set)",
          dat.string(), v.idx.filename().string()));
      continue;
    }
    // As weed's DiskLocation.loadExistingVolume (issue 15, 5): a .note left beside a volume marks
    // an unfinished copy, which weed deletes at load and never serves; a .dat beside an .ecx is
    // served from its EC shards (deletes go to .ecx/.ecj, not this .idx). weed loads the .dat
    // only after removing an invalid EC set, so skipping until the .ecx is gone is safe.
    if (fs::exists(dir / (base + ".note"), exists_ec)) {
      report.warnings.push_back(fmt::format(
          "skipping {}: {}.note beside it (an unfinished copy; the volume server does not load it)",
          dat.string(), base));
      continue;
    }
    if (fs::exists(dir / (base + ".ecx"), exists_ec)) {
      report.warnings.push_back(fmt::format(
          "skipping {}: {}.ecx beside it (the volume server serves this volume from its EC shards)",
          dat.string(), base));
      continue;
    }
    const fs::path vif = dir / (base + ".vif");
    if (fs::is_regular_file(vif, exists_ec)) v.vif = vif;
    auto [pos, inserted] = by_id.emplace(v.volume_id, v);
    if (!inserted) {
      report.warnings.push_back(fmt::format("skipping {}: duplicate volume id {} (already {})",
                                            dat.string(), v.volume_id, pos->second.dat.string()));
    }
  }
  report.volumes.reserve(by_id.size());
  for (auto& [id, v] : by_id)
    report.volumes.push_back(std::move(v));
  return report;
}

namespace {

// `bytesOffset` as protojson writes it (a number) or may read it (a decimal string); protojson
// also accepts the proto field name `bytes_offset`.
Result<std::optional<uint64_t>> BytesOffsetField(const nlohmann::json& j, const fs::path& path) {
  for (const char* key : {"bytesOffset", "bytes_offset"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (it->is_number_unsigned()) return std::optional<uint64_t>(it->get<uint64_t>());
    if (it->is_string()) {
      const std::string s = it->get<std::string>();
      uint64_t v = 0;
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec == std::errc() && end == s.data() + s.size()) return std::optional<uint64_t>(v);
    }
    return Error(Code::kCorruption,
                 fmt::format("{}: {} is {}, expected 4 or 5", path.string(), key, it->dump()));
  }
  return std::optional<uint64_t>();
}

}  // namespace

Result<OffsetWidth> VolumeOffsetWidth(const VolumeFiles& v, OffsetWidth fallback) {
  if (!v.vif) return fallback;
  const fs::path& path = *v.vif;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error(Code::kIOError, fmt::format("reading {}: cannot open it", path.string()));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  // SeaweedFS treats an empty .vif as "no volume info" (it writes one before it knows anything).
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return fallback;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(Code::kCorruption,
                 fmt::format("{}: not a JSON object (expected protojson VolumeInfo); fix or "
                             "remove the file",
                             path.string()));
  }
  SWRDMA_ASSIGN_OR_RETURN(std::optional<uint64_t> bytes_offset, BytesOffsetField(j, path));
  // Absent (protojson omits zero) means the build's default, as SeaweedFS reads it.
  if (!bytes_offset || *bytes_offset == 0) return fallback;
  if (*bytes_offset == 4) return OffsetWidth::k4;
  if (*bytes_offset == 5) return OffsetWidth::k5;
  return Error(Code::kCorruption,
               fmt::format("{}: bytesOffset is {}, expected 4 or 5", path.string(), *bytes_offset));
}

}  // namespace swrdma
