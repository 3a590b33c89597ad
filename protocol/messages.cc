#include "protocol/messages.h"

#include <fmt/format.h>

#include "protocol/wire.h"

namespace swrdma {
namespace {

using nlohmann::json;

json Versioned() {
  return json{{"protocol", kProtocolVersion}};
}

Status CheckProtocol(const json& j) {
  if (!j.is_object()) return Status(Code::kInvalidArgument, "message must be a map/object");
  auto v = GetUint(j, "protocol");
  if (!v) return v.error();
  if (*v != kProtocolVersion) {
    return Status(Code::kInvalidArgument,
                  fmt::format("protocol version {} is not supported (this side speaks {})", *v,
                              kProtocolVersion));
  }
  return Status::Ok();
}

template <typename T>
Result<T> Narrow(Result<uint64_t> v, std::string_view key) {
  if (!v) return Error(v.error());
  if (*v > std::numeric_limits<T>::max()) {
    return Error(Code::kInvalidArgument, fmt::format("field '{}' is out of range", key));
  }
  return static_cast<T>(*v);
}

json RegionToJson(const RegionDescriptor& r) {
  return json{{"file_offset", r.file_offset},
              {"address", r.address},
              {"length", r.length},
              {"rkey", json::binary(r.rkey)}};
}

json VolumeToJson(const VolumeDescriptor& m) {
  json regions = json::array();
  for (const auto& r : m.regions)
    regions.push_back(RegionToJson(r));
  json j{{"volume_id", m.volume_id},
         {"collection", m.collection},
         {"version", m.version},
         {"size", m.size},
         {"live_needles", m.live_needles},
         {"deleted_needles", m.deleted_needles},
         {"compaction_revision", m.compaction_revision},
         {"generation", m.generation},
         {"regions", std::move(regions)}};
  if (m.ec) {
    j["ec"] = true;
    j["ec_shards"] = m.ec_shards;
    if (!m.ec_regions.empty()) {
      json regions = json::array();
      for (const auto& r : m.ec_regions) {
        regions.push_back(json{{"shard", r.shard},
                               {"address", r.address},
                               {"length", r.length},
                               {"rkey", json::binary(r.rkey)}});
      }
      j["ec_regions"] = std::move(regions);
    }
  }
  return j;
}

Result<VolumeDescriptor> VolumeFromJsonNoVersion(const json& j) {
  VolumeDescriptor m;
  SWRDMA_ASSIGN_OR_RETURN(m.volume_id, Narrow<uint32_t>(GetUint(j, "volume_id"), "volume_id"));
  SWRDMA_ASSIGN_OR_RETURN(m.collection, GetString(j, "collection"));
  SWRDMA_ASSIGN_OR_RETURN(m.version, Narrow<uint8_t>(GetUint(j, "version"), "version"));
  SWRDMA_ASSIGN_OR_RETURN(m.size, GetUint(j, "size"));
  SWRDMA_ASSIGN_OR_RETURN(m.live_needles, GetUint(j, "live_needles"));
  SWRDMA_ASSIGN_OR_RETURN(m.deleted_needles, GetUint(j, "deleted_needles"));
  SWRDMA_ASSIGN_OR_RETURN(m.compaction_revision, Narrow<uint16_t>(GetUint(j, "compaction_revision"),
                                                                  "compaction_revision"));
  SWRDMA_ASSIGN_OR_RETURN(m.generation, GetUint(j, "generation"));
  SWRDMA_ASSIGN_OR_RETURN(const json* regions, GetArray(j, "regions"));
  for (const auto& r : *regions) {
    RegionDescriptor d;
    SWRDMA_ASSIGN_OR_RETURN(d.file_offset, GetUint(r, "file_offset"));
    SWRDMA_ASSIGN_OR_RETURN(d.address, GetUint(r, "address"));
    SWRDMA_ASSIGN_OR_RETURN(d.length, GetUint(r, "length"));
    SWRDMA_ASSIGN_OR_RETURN(d.rkey, GetBytes(r, "rkey"));
    m.regions.push_back(std::move(d));
  }
  if (auto ec = j.find("ec"); ec != j.end()) {
    if (!ec->is_boolean()) return Error(Code::kInvalidArgument, "field 'ec': expected a bool");
    m.ec = ec->get<bool>();
  }
  if (m.ec) {
    SWRDMA_ASSIGN_OR_RETURN(const json* shards, GetArray(j, "ec_shards"));
    for (const auto& s : *shards) {
      if (!s.is_number_unsigned() || s.get<uint64_t>() >= 256) {
        return Error(Code::kInvalidArgument, "field 'ec_shards': expected shard numbers");
      }
      m.ec_shards.push_back(s.get<uint32_t>());
    }
    if (j.contains("ec_regions")) {
      SWRDMA_ASSIGN_OR_RETURN(const json* regions, GetArray(j, "ec_regions"));
      for (const auto& r : *regions) {
        EcShardRegion d;
        SWRDMA_ASSIGN_OR_RETURN(d.shard, Narrow<uint8_t>(GetUint(r, "shard"), "shard"));
        SWRDMA_ASSIGN_OR_RETURN(d.address, GetUint(r, "address"));
        SWRDMA_ASSIGN_OR_RETURN(d.length, GetUint(r, "length"));
        SWRDMA_ASSIGN_OR_RETURN(d.rkey, GetBytes(r, "rkey"));
        m.ec_regions.push_back(std::move(d));
      }
    }
  }
  return m;
}

// "ec_intervals": at most kMaxEcIntervals [shard, offset, length] triples, none empty, adding up
// to the record's `length` (a client sizes its buffer by it).
Result<std::vector<EcInterval>> EcIntervalsFromJson(const json& j, uint64_t record_length) {
  auto bad = [](std::string_view why) {
    return Error(Code::kInvalidArgument, fmt::format("field 'ec_intervals': {}", why));
  };
  if (!j.is_array()) return bad("expected an array");
  if (j.size() > kMaxEcIntervals) {
    return bad(fmt::format("more than {} intervals", kMaxEcIntervals));
  }
  std::vector<EcInterval> out;
  uint64_t total = 0;
  for (const auto& p : j) {
    if (!p.is_array() || p.size() != 3 || !p[0].is_number_unsigned() ||
        !p[1].is_number_unsigned() || !p[2].is_number_unsigned() || p[0].get<uint64_t>() >= 256) {
      return bad("expected [shard, offset, length] triples of unsigned integers");
    }
    const EcInterval r{p[0].get<uint32_t>(), p[1].get<uint64_t>(), p[2].get<uint64_t>()};
    if (r.length == 0 || r.length > record_length - total) {
      return bad("the intervals' lengths must be positive and add up to the record's length");
    }
    total += r.length;
    out.push_back(r);
  }
  if (!out.empty() && total != record_length) {
    return bad("the intervals' lengths must be positive and add up to the record's length");
  }
  return out;
}

}  // namespace

std::string_view LookupStatusName(LookupStatus s) {
  switch (s) {
    case LookupStatus::kOk:
      return "ok";
    case LookupStatus::kNotFound:
      return "not_found";
    case LookupStatus::kDeleted:
      return "deleted";
    case LookupStatus::kBadFid:
      return "bad_fid";
    case LookupStatus::kUnknownVolume:
      return "unknown_volume";
    case LookupStatus::kNoRoom:
      return "no_room";
  }
  return "unknown";
}

Result<LookupStatus> ParseLookupStatus(std::string_view s) {
  for (auto st : {LookupStatus::kOk, LookupStatus::kNotFound, LookupStatus::kDeleted,
                  LookupStatus::kBadFid, LookupStatus::kUnknownVolume, LookupStatus::kNoRoom}) {
    if (LookupStatusName(st) == s) return st;
  }
  return Error(Code::kInvalidArgument, fmt::format("unknown lookup status '{}'", s));
}

json ErrorJson(std::string_view message) {
  json j = Versioned();
  j["error"] = message;
  return j;
}

json ToJson(const AgentInfo& m) {
  json j = Versioned();
  j["agent_version"] = m.agent_version;
  j["worker_address"] = json::binary(m.worker_address);
  j["transports"] = m.transports;
  j["volume_count"] = m.volume_count;
  j["exposure"] = m.exposure;
  return j;
}

json ToJson(const VolumeDescriptor& m) {
  json j = VolumeToJson(m);
  j["protocol"] = kProtocolVersion;
  return j;
}

json ToJson(const VolumeList& m) {
  json j = Versioned();
  json vols = json::array();
  for (const auto& v : m.volumes)
    vols.push_back(VolumeToJson(v));
  j["volumes"] = std::move(vols);
  return j;
}

json ToJson(const LookupRequest& m) {
  json j = Versioned();
  j["fids"] = m.fids;
  if (!m.jwts.empty()) j["jwts"] = m.jwts;
  return j;
}

json ToJson(const LookupResponse& m) {
  json j = Versioned();
  json results = json::array();
  for (const auto& r : m.results) {
    json e{{"fid", r.fid}, {"status", LookupStatusName(r.status)}};
    if (r.status == LookupStatus::kOk) {
      e["volume_id"] = r.volume_id;
      e["generation"] = r.generation;
      e["address"] = r.address;
      e["length"] = r.length;
      e["size"] = r.size;
      if (r.version != 0) e["version"] = r.version;
      if (r.ec) e["ec"] = true;
      if (!r.ec_intervals.empty()) {
        json reads = json::array();
        for (const EcInterval& p : r.ec_intervals)
          reads.push_back(json::array({p.shard, p.offset, p.length}));
        e["ec_intervals"] = std::move(reads);
      }
      if (r.checked) e["checked"] = true;
    } else {
      if (r.status == LookupStatus::kNoRoom) e["length"] = r.length;
      if (r.status != LookupStatus::kBadFid) e["volume_id"] = r.volume_id;
      e["error"] = r.error;
    }
    results.push_back(std::move(e));
  }
  j["results"] = std::move(results);
  if (m.timing) {
    j["timing"] = {{"decode_us", m.timing->decode_us},
                   {"lookup_us", m.timing->lookup_us},
                   {"encode_us", m.timing->encode_us}};
  }
  return j;
}

json ToJson(const SampleResponse& m) {
  json j = Versioned();
  j["volume_id"] = m.volume_id;
  j["generation"] = m.generation;
  j["live_needles"] = m.live_needles;
  j["fids"] = m.fids;
  return j;
}

Result<AgentInfo> AgentInfoFromJson(const json& j) {
  SWRDMA_RETURN_IF_ERROR(CheckProtocol(j));
  AgentInfo m;
  SWRDMA_ASSIGN_OR_RETURN(m.agent_version, GetString(j, "agent_version"));
  SWRDMA_ASSIGN_OR_RETURN(m.worker_address, GetBytes(j, "worker_address"));
  SWRDMA_ASSIGN_OR_RETURN(m.transports, GetStringArray(j, "transports"));
  SWRDMA_ASSIGN_OR_RETURN(m.volume_count, GetUint(j, "volume_count"));
  SWRDMA_ASSIGN_OR_RETURN(m.exposure, GetString(j, "exposure"));
  return m;
}

Result<VolumeDescriptor> VolumeDescriptorFromJson(const json& j) {
  SWRDMA_RETURN_IF_ERROR(CheckProtocol(j));
  return VolumeFromJsonNoVersion(j);
}

Result<VolumeList> VolumeListFromJson(const json& j) {
  SWRDMA_RETURN_IF_ERROR(CheckProtocol(j));
  SWRDMA_ASSIGN_OR_RETURN(const json* vols, GetArray(j, "volumes"));
  VolumeList m;
  for (const auto& v : *vols) {
    SWRDMA_ASSIGN_OR_RETURN(auto d, VolumeFromJsonNoVersion(v));
    m.volumes.push_back(std::move(d));
  }
  return m;
}

Result<LookupRequest> LookupRequestFromJson(const json& j) {
  SWRDMA_RETURN_IF_ERROR(CheckProtocol(j));
  LookupRequest m;
  SWRDMA_ASSIGN_OR_RETURN(m.fids, GetStringArray(j, "fids"));
  if (j.contains("jwts")) {
    SWRDMA_ASSIGN_OR_RETURN(m.jwts, GetStringArray(j, "jwts"));
  }
  return m;
}

Result<LookupResponse> LookupResponseFromJson(const json& j) {
  SWRDMA_RETURN_IF_ERROR(CheckProtocol(j));
  SWRDMA_ASSIGN_OR_RETURN(const json* results, GetArray(j, "results"));
  LookupResponse m;
  m.results.reserve(results->size());
  for (const auto& e : *results) {
    LookupResult r;
    SWRDMA_ASSIGN_OR_RETURN(r.fid, GetString(e, "fid"));
    SWRDMA_ASSIGN_OR_RETURN(std::string status, GetString(e, "status"));
    SWRDMA_ASSIGN_OR_RETURN(r.status, ParseLookupStatus(status));
    if (r.status == LookupStatus::kOk) {
      SWRDMA_ASSIGN_OR_RETURN(r.volume_id, Narrow<uint32_t>(GetUint(e, "volume_id"), "volume_id"));
      SWRDMA_ASSIGN_OR_RETURN(r.generation, GetUint(e, "generation"));
      SWRDMA_ASSIGN_OR_RETURN(r.address, GetUint(e, "address"));
      SWRDMA_ASSIGN_OR_RETURN(r.length, GetUint(e, "length"));
      SWRDMA_ASSIGN_OR_RETURN(r.size, Narrow<uint32_t>(GetUint(e, "size"), "size"));
      if (e.contains("version")) {
        SWRDMA_ASSIGN_OR_RETURN(r.version, Narrow<uint8_t>(GetUint(e, "version"), "version"));
      }
      if (auto ec = e.find("ec"); ec != e.end()) {
        if (!ec->is_boolean()) return Error(Code::kInvalidArgument, "field 'ec': expected a bool");
        r.ec = ec->get<bool>();
      }
      if (auto reads = e.find("ec_intervals"); reads != e.end()) {
        SWRDMA_ASSIGN_OR_RETURN(r.ec_intervals, EcIntervalsFromJson(*reads, r.length));
      }
      if (auto checked = e.find("checked"); checked != e.end()) {
        if (!checked->is_boolean()) {
          return Error(Code::kInvalidArgument, "field 'checked': expected a bool");
        }
        r.checked = checked->get<bool>();
      }
    } else {
      if (auto err = GetString(e, "error")) r.error = *err;
      if (r.status == LookupStatus::kNoRoom) {
        SWRDMA_ASSIGN_OR_RETURN(r.length, GetUint(e, "length"));
      }
    }
    m.results.push_back(std::move(r));
  }
  if (auto t = j.find("timing"); t != j.end()) {
    if (!t->is_object()) return Error(Code::kInvalidArgument, "field 'timing': expected a map");
    LookupTiming timing;
    SWRDMA_ASSIGN_OR_RETURN(timing.decode_us, GetUint(*t, "decode_us"));
    SWRDMA_ASSIGN_OR_RETURN(timing.lookup_us, GetUint(*t, "lookup_us"));
    SWRDMA_ASSIGN_OR_RETURN(timing.encode_us, GetUint(*t, "encode_us"));
    m.timing = timing;
  }
  return m;
}

Result<SampleResponse> SampleResponseFromJson(const json& j) {
  SWRDMA_RETURN_IF_ERROR(CheckProtocol(j));
  SampleResponse m;
  SWRDMA_ASSIGN_OR_RETURN(m.volume_id, Narrow<uint32_t>(GetUint(j, "volume_id"), "volume_id"));
  SWRDMA_ASSIGN_OR_RETURN(m.generation, GetUint(j, "generation"));
  SWRDMA_ASSIGN_OR_RETURN(m.live_needles, GetUint(j, "live_needles"));
  SWRDMA_ASSIGN_OR_RETURN(m.fids, GetStringArray(j, "fids"));
  return m;
}

}  // namespace swrdma
