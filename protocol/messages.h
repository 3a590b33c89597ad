// The agent's key-exchange API messages (HTTP bodies, msgpack or JSON; see protocol/wire.h).
// Every message carries `protocol` (kProtocolVersion). Unknown fields are ignored; missing or
// wrongly typed fields are kInvalidArgument (HTTP 400) naming the field.
//
//   GET  /v1/info            -> AgentInfo
//   GET  /v1/volumes         -> VolumeList
//   GET  /v1/volumes/<vid>   -> VolumeDescriptor
//   POST /v1/lookup          LookupRequest -> LookupResponse
//   GET  /v1/volumes/<vid>/sample?n=N[&seed=S]  -> SampleResponse (random live fids, benchmarks)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/status.h"

namespace swrdma {

inline constexpr uint64_t kProtocolVersion = 1;

struct AgentInfo {
  std::string agent_version;
  std::vector<uint8_t> worker_address;  // packed UCX worker address, for ucp_ep_create
  std::vector<std::string> transports;  // UCX transports the agent's context uses
  uint64_t volume_count = 0;
  // How clients get bytes: "checked" (the agent checks and sends every record: tcp, shared
  // memory), "region" (one-sided reads under keys a NIC enforces) or "push" (the agent writes
  // records into client buffers). /v1/info also says it per transport ("exposures").
  std::string exposure = "checked";
};

// One registered slice of a volume's `.dat`: bytes [file_offset, file_offset + length) of the
// file are at remote `address` under `rkey`.
struct RegionDescriptor {
  uint64_t file_offset = 0;
  uint64_t address = 0;
  uint64_t length = 0;
  std::vector<uint8_t> rkey;  // packed, for ucp_ep_rkey_unpack
};

// One shard file of an erasure-coded volume registered for one-sided reads (verbs): bytes
// [0, length) of shard `shard` are at remote `address` under `rkey`.
struct EcShardRegion {
  uint32_t shard = 0;
  uint64_t address = 0;
  uint64_t length = 0;
  std::vector<uint8_t> rkey;
};

struct VolumeDescriptor {
  uint32_t volume_id = 0;
  std::string collection;
  uint8_t version = 3;  // superblock / needle version
  uint64_t size = 0;    // bytes of the .dat exported
  uint64_t live_needles = 0;
  uint64_t deleted_needles = 0;
  uint16_t compaction_revision = 0;
  uint64_t generation = 0;  // changes whenever the exported mapping changes
  std::vector<RegionDescriptor> regions;
  // An erasure-coded volume (fields "ec", "ec_shards", sent only for one): no regions; `size`
  // is the encoded .dat size, `ec_shards` the shard files this server holds.
  bool ec = false;
  std::vector<uint32_t> ec_shards;
  // The shards registered for one-sided reads (field "ec_regions", sent only when some are: an
  // agent with a verbs device, within its pin budget).
  std::vector<EcShardRegion> ec_regions;
};

struct VolumeList {
  std::vector<VolumeDescriptor> volumes;
};

struct LookupRequest {
  std::vector<std::string> fids;
  // SeaweedFS read tokens when the agent requires them: none (the HTTP request's own token, if
  // any, applies to every fid), one for all, or one per fid in order. Field "jwts", optional.
  std::vector<std::string> jwts;
};

// kNoRoom: push answers only (verbs push): the record did not fit in the rest of the client's
// buffer
// (`length` says how much it needs); ask again for it.
// One piece of an EC needle's record, as weed's LocateData places it: `length` bytes at
// `offset` in shard file `shard`. The pieces of a record, in order, make the record.
struct EcInterval {
  uint32_t shard = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  friend bool operator==(const EcInterval&, const EcInterval&) = default;
};
// A lookup answer carries at most this many: a record in more pieces is read checked.
inline constexpr size_t kMaxEcIntervals = 16;

enum class LookupStatus : uint8_t { kOk, kNotFound, kDeleted, kBadFid, kUnknownVolume, kNoRoom };
std::string_view LookupStatusName(LookupStatus s);  // "ok", "not_found", ...
Result<LookupStatus> ParseLookupStatus(std::string_view s);

struct LookupResult {
  std::string fid;  // as asked
  LookupStatus status = LookupStatus::kOk;
  uint32_t volume_id = 0;
  uint64_t generation = 0;
  uint64_t address = 0;  // remote address of the whole needle record
  uint64_t length = 0;   // record length including padding
  uint32_t size = 0;     // needle size from the index (header size field)
  uint8_t version = 0;   // needle version, in push answers (0: not sent; see the volume)
  std::string error;     // for anything but ok: what is wrong, for humans
  // The needle is in an erasure-coded volume (field "ec", sent only when true): there is no
  // address; read it with a checked read (the agent assembles it from its shards), or, when
  // `ec_intervals` is set, with one RDMA READ per interval into consecutive bytes of one buffer
  // of `length` bytes, each from its shard's region (VolumeDescriptor::ec_regions).
  bool ec = false;
  // Field "ec_intervals", [[shard, offset, length], ...]: where the record lies, in record
  // order (their lengths add up to `length`; at most kMaxEcIntervals). Sent only in region
  // exposure, for an EC needle whose every piece lies in a shard registered here.
  std::vector<EcInterval> ec_intervals;
  // The record lies in bytes the agent has not registered for one-sided reads (past
  // --max-pinned-bytes, or the registration failed) (field "checked", sent only when true):
  // read it with a checked read; `address` is not under any remote key.
  bool checked = false;
};

// Where the agent's time went for one lookup, in microseconds; sent only when the request asked
// (POST /v1/lookup?timing=1 or header X-Swrdma-Timing: 1). Field "timing", optional.
struct LookupTiming {
  uint64_t decode_us = 0;  // parsing the request body
  uint64_t lookup_us = 0;  // index lookups and checks against the exports
  uint64_t encode_us = 0;  // building and serializing the answer (without this object)
  friend bool operator==(const LookupTiming&, const LookupTiming&) = default;
};

struct LookupResponse {
  std::vector<LookupResult> results;   // same order as the request
  std::optional<LookupTiming> timing;  // encoded only when set
};

// Random live needles of one volume, for benchmarks and spot checks: clients cannot enumerate
// needles, and a production agent has no manifest of them.
struct SampleResponse {
  uint32_t volume_id = 0;
  uint64_t generation = 0;        // export the fids were checked against
  uint64_t live_needles = 0;      // live needles in the volume: the population sampled from
  std::vector<std::string> fids;  // up to n distinct live fids, in random order
};

// An error body: {"protocol":1,"error":"..."}.
nlohmann::json ErrorJson(std::string_view message);

nlohmann::json ToJson(const AgentInfo& m);
nlohmann::json ToJson(const VolumeDescriptor& m);
nlohmann::json ToJson(const VolumeList& m);
nlohmann::json ToJson(const LookupRequest& m);
nlohmann::json ToJson(const LookupResponse& m);
nlohmann::json ToJson(const SampleResponse& m);

Result<AgentInfo> AgentInfoFromJson(const nlohmann::json& j);
Result<VolumeDescriptor> VolumeDescriptorFromJson(const nlohmann::json& j);
Result<VolumeList> VolumeListFromJson(const nlohmann::json& j);
Result<LookupRequest> LookupRequestFromJson(const nlohmann::json& j);
Result<LookupResponse> LookupResponseFromJson(const nlohmann::json& j);
Result<SampleResponse> SampleResponseFromJson(const nlohmann::json& j);

}  // namespace swrdma
