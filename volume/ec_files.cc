// The `.vif` of an EC volume and finding EC volumes in a directory.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "volume/ec_volume.h"
#include "volume/volume_files.h"

namespace swrdma::ec {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A protojson integer, whatever its spelling: protojson writes 64-bit integers as decimal
// strings and accepts a number or a string for every integer field (and integral floats).
struct JsonInt {
  bool negative = false;
  uint64_t magnitude = 0;
};

std::optional<JsonInt> AsInt(const json& v) {
  if (v.is_number_unsigned()) return JsonInt{false, v.get<uint64_t>()};
  if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    return JsonInt{x < 0, x < 0 ? uint64_t{0} - static_cast<uint64_t>(x) : uint64_t(x)};
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::trunc(d) || std::fabs(d) >= 18446744073709551616.0) {
      return std::nullopt;
    }
    return JsonInt{d < 0, static_cast<uint64_t>(std::fabs(d))};
  }
  if (v.is_string()) {
    std::string_view s = v.get_ref<const std::string&>();
    JsonInt out;
    if (!s.empty() && s.front() == '-') {
      out.negative = true;
      s.remove_prefix(1);
    }
    if (s.empty() || s.front() == '+') return std::nullopt;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out.magnitude);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    if (out.magnitude == 0) out.negative = false;
    return out;
  }
  return std::nullopt;
}

// The first of `names` present (and not null) in `obj`: protojson accepts the camelCase JSON
// name and the proto field name.
const json* FindField(const json& obj, std::initializer_list<const char*> names,
                      const char** found) {
  for (const char* name : names) {
    auto it = obj.find(name);
    if (it != obj.end() && !it->is_null()) {
      *found = name;
      return &*it;
    }
  }
  return nullptr;
}

Status BadField(const char* name, const json& v, std::string_view expected) {
  return Status(Code::kCorruption,
                fmt::format(".vif field {} is {}, expected {}; the file is not a VolumeInfo "
                            "SeaweedFS wrote (fix or remove it)",
                            name, v.dump(), expected));
}

Result<std::optional<uint64_t>> UnsignedField(const json& obj,
                                              std::initializer_list<const char*> names,
                                              uint64_t max) {
  const char* name = nullptr;
  const json* v = FindField(obj, names, &name);
  if (v == nullptr) return std::optional<uint64_t>();
  const std::optional<JsonInt> i = AsInt(*v);
  if (!i || i->negative || i->magnitude > max) {
    return std::unexpected(BadField(name, *v, fmt::format("an integer in [0, {}]", max)));
  }
  return std::optional<uint64_t>(i->magnitude);
}

Result<std::optional<int64_t>> SignedField(const json& obj,
                                           std::initializer_list<const char*> names) {
  const char* name = nullptr;
  const json* v = FindField(obj, names, &name);
  if (v == nullptr) return std::optional<int64_t>();
  const std::optional<JsonInt> i = AsInt(*v);
  constexpr uint64_t kMaxPositive = uint64_t{1} << 63;  // exclusive for positive values
  if (!i || i->magnitude > kMaxPositive || (!i->negative && i->magnitude == kMaxPositive)) {
    return std::unexpected(BadField(name, *v, "a 64-bit integer"));
  }
  return std::optional<int64_t>(i->negative ? static_cast<int64_t>(0 - i->magnitude)
                                            : static_cast<int64_t>(i->magnitude));
}

}  // namespace

Result<EcVolumeInfo> ParseEcVolumeInfo(std::string_view text, OffsetWidth fallback_width) {
  EcVolumeInfo info;
  info.offset_width = fallback_width;
  // weed treats an empty .vif as absent (ec.decode may leave one); we also allow whitespace.
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return info;
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(Code::kCorruption,
                 ".vif is not a JSON object (expected protojson VolumeInfo); fix or remove it");
  }
  SWRDMA_ASSIGN_OR_RETURN(const std::optional<uint64_t> version,
                          UnsignedField(j, {"version"}, 255));
  // weed would take a present 0 literally and fail every read; no needle version 0 exists, so
  // 0 means "not written" here, as absence does (weed's NewEcVolume default is 3).
  if (version && *version != 0) info.version = static_cast<uint8_t>(*version);

  SWRDMA_ASSIGN_OR_RETURN(const std::optional<int64_t> dat_size,
                          SignedField(j, {"datFileSize", "dat_file_size"}));
  if (dat_size && *dat_size < 0) {
    return Error(BadField("datFileSize", json(*dat_size), "a size >= 0"));
  }
  info.dat_file_size = dat_size.value_or(0);

  // DestroyTime: the field's name in the pre-3.x VolumeInfo that weed still reads.
  SWRDMA_ASSIGN_OR_RETURN(
      const std::optional<uint64_t> expire,
      UnsignedField(j, {"expireAtSec", "expire_at_sec", "DestroyTime", "destroyTime"}, UINT64_MAX));
  info.expire_at_sec = expire.value_or(0);

  SWRDMA_ASSIGN_OR_RETURN(
      const std::optional<uint64_t> bytes_offset,
      UnsignedField(j, {"bytesOffset", "bytes_offset", "BytesOffset"}, UINT32_MAX));
  // weed's ec.encode writes a fresh VolumeInfo without bytesOffset (0): the width is then the
  // build's, which the caller knows (fallback_width).
  if (bytes_offset == 4u) info.offset_width = OffsetWidth::k4;
  if (bytes_offset == 5u) info.offset_width = OffsetWidth::k5;

  const char* config_name = nullptr;
  const json* config = FindField(j, {"ecShardConfig", "ec_shard_config"}, &config_name);
  if (config != nullptr) {
    if (!config->is_object()) return Error(BadField(config_name, *config, "an object"));
    SWRDMA_ASSIGN_OR_RETURN(const std::optional<uint64_t> data,
                            UnsignedField(*config, {"dataShards", "data_shards"}, UINT32_MAX));
    SWRDMA_ASSIGN_OR_RETURN(const std::optional<uint64_t> parity,
                            UnsignedField(*config, {"parityShards", "parity_shards"}, UINT32_MAX));
    SWRDMA_ASSIGN_OR_RETURN(const std::optional<int64_t> ts,
                            SignedField(*config, {"encodeTsNs", "encode_ts_ns"}));
    SWRDMA_ASSIGN_OR_RETURN(const std::optional<int64_t> block,
                            SignedField(*config, {"blockSize", "block_size"}));
    const uint64_t d = data.value_or(0), p = parity.value_or(0);
    // As weed's NewEcVolume (late 2026): a present config with an impossible ratio or block size
    // is refused: the defaults would read the shards with the wrong offsets.
    if (d == 0 || p == 0 || d + p > kMaxShards) {
      return Error(Code::kCorruption,
                   fmt::format(".vif records EC shard counts {}+{}: impossible (at least one "
                               "of each, at most {} in all); fix or remove the .vif",
                               d, p, kMaxShards));
    }
    const int64_t b = block.value_or(0);
    if (b < 0 || b % static_cast<int64_t>(kSmallBlockSize) != 0) {
      return Error(Code::kCorruption,
                   fmt::format(".vif records EC blockSize {}: expected 0 (legacy layout) or a "
                               "multiple of {}; fix or remove the .vif",
                               b, kSmallBlockSize));
    }
    info.data_shards = static_cast<uint32_t>(d);
    info.parity_shards = static_cast<uint32_t>(p);
    info.block_size = static_cast<uint64_t>(b);
    info.encode_ts_ns = ts.value_or(0);
  }
  return info;
}

uint64_t UniformBlockSize(uint64_t dat_size, uint32_t data_shards) {
  if (data_shards == 0) return kSmallBlockSize;
  const uint64_t per_shard = (dat_size + data_shards - 1) / data_shards;
  const uint64_t blocks = (per_shard + kSmallBlockSize - 1) / kSmallBlockSize;
  return std::max<uint64_t>(blocks, 1) * kSmallBlockSize;
}

Layout LayoutOf(const EcVolumeInfo& info, uint64_t any_shard_size) {
  Layout l;
  l.data_shards = info.data_shards;
  if (info.block_size > 0) l.large_block = l.small_block = info.block_size;
  if (info.dat_file_size > 0) {
    l.shard_dat_size = info.dat_file_size / info.data_shards;
  } else if (any_shard_size > 0) {
    // weed for volumes encoded before .vif carried datFileSize: a shard's size minus one (a
    // shard that is an exact multiple of the large block holds small rows after all).
    l.shard_dat_size = any_shard_size - 1;
  }
  return l;
}

std::string EcVolumeFiles::base_name() const {
  if (collection.empty()) return std::to_string(volume_id);
  return collection + "_" + std::to_string(volume_id);
}

namespace {

// ".ec00" .. ".ec31" -> the shard id; anything else (".ecx", ".ec5", ".ec100") -> nullopt.
std::optional<uint32_t> ShardFromExtension(const std::string& ext) {
  if (ext.size() != 5 || ext.compare(0, 3, ".ec") != 0) return std::nullopt;
  const char a = ext[3], b = ext[4];
  if (a < '0' || a > '9' || b < '0' || b > '9') return std::nullopt;
  return static_cast<uint32_t>((a - '0') * 10 + (b - '0'));
}

}  // namespace

Result<EcDiscoveryReport> DiscoverEcVolumes(const fs::path& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    return Error(Code::kIOError, fmt::format("listing volume directory {}: {}; check the path "
                                             "and permissions",
                                             dir.string(), ec.message()));
  }
  std::vector<fs::path> ecxs;
  std::map<std::string, std::map<uint32_t, fs::path>> shards_by_base;
  EcDiscoveryReport report;
  for (const fs::directory_entry& entry : it) {
    std::error_code type_ec;
    if (!entry.is_regular_file(type_ec)) continue;  // follows symlinks
    const fs::path& p = entry.path();
    const std::string ext = p.extension().string();
    if (ext == ".ecx") {
      ecxs.push_back(p);
    } else if (const auto shard = ShardFromExtension(ext)) {
      if (*shard >= kMaxShards) {
        report.warnings.push_back(
            fmt::format("ignoring {}: shard {} is beyond SeaweedFS's {} shards", p.string(), *shard,
                        kMaxShards));
        continue;
      }
      shards_by_base[p.stem().string()][*shard] = p;
    }
  }
  // Sorted, so which of two volumes with the same id wins does not depend on directory order.
  std::sort(ecxs.begin(), ecxs.end());

  std::map<uint32_t, EcVolumeFiles> by_id;
  for (const fs::path& ecx : ecxs) {
    const std::string base = ecx.stem().string();
    auto parsed = ParseVolumeFileName(ecx, report.warnings);
    if (!parsed) continue;
    EcVolumeFiles v;
    v.collection = std::move(parsed->first);
    v.volume_id = parsed->second;
    v.ecx = ecx;
    v.ecj = dir / (base + ".ecj");
    std::error_code exists_ec;
    const fs::path vif = dir / (base + ".vif");
    if (fs::is_regular_file(vif, exists_ec)) v.vif = vif;
    if (auto found = shards_by_base.find(base); found != shards_by_base.end()) {
      v.shards = std::move(found->second);
      shards_by_base.erase(found);
    }
    if (auto [pos, inserted] = by_id.emplace(v.volume_id, v); !inserted) {
      report.warnings.push_back(fmt::format("skipping {}: duplicate volume id {} (already {})",
                                            ecx.string(), v.volume_id, pos->second.ecx.string()));
    }
  }
  // Shards whose .ecx is elsewhere (weed keeps the index on one disk of a server, or in
  // -dir.idx): listed apart, for a caller scanning several directories to merge.
  for (auto& [base, shards] : shards_by_base) {
    if (shards.empty()) continue;
    auto parsed = ParseVolumeBaseName(base);
    if (!parsed) {
      report.warnings.push_back(fmt::format(
          "ignoring {} shard file(s) of {} in {}: name is not [<collection>_]<volume id>",
          shards.size(), base, dir.string()));
      continue;
    }
    EcVolumeFiles v;
    v.collection = std::move(parsed->first);
    v.volume_id = parsed->second;
    v.shards = std::move(shards);
    report.without_ecx.push_back(std::move(v));
  }
  report.volumes.reserve(by_id.size());
  for (auto& [id, v] : by_id)
    report.volumes.push_back(std::move(v));
  return report;
}

}  // namespace swrdma::ec
