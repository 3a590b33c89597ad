#include "agent/checked_read.h"

#include <fmt/format.h>

namespace swrdma::agent {
namespace {

ReadStatus ToReadStatus(LookupStatus s) {
  switch (s) {
    case LookupStatus::kOk:
      return ReadStatus::kOk;
    case LookupStatus::kNotFound:
      return ReadStatus::kNotFound;
    case LookupStatus::kDeleted:
      return ReadStatus::kDeleted;
    case LookupStatus::kBadFid:
      return ReadStatus::kBadFid;
    case LookupStatus::kUnknownVolume:
      return ReadStatus::kUnknownVolume;
    case LookupStatus::kNoRoom:
      break;
  }
  return ReadStatus::kInternal;
}

CheckedRecord Refusal(ReadStatus status, uint32_t volume_id, std::string reason) {
  CheckedRecord r;
  r.status = status;
  r.volume_id = volume_id;
  r.reason = std::move(reason);
  return r;
}

// A kOk record the agent built in its own memory (an EC record, or its pieces): `bytes` live in
// the record until the reply is sent.
CheckedRecord Assembled(uint32_t volume_id, std::vector<uint8_t> bytes, uint32_t needle_size,
                        NeedleVersion version, uint64_t generation) {
  CheckedRecord out;
  out.status = ReadStatus::kOk;
  out.volume_id = volume_id;
  auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  out.record = *owned;
  out.assembled = std::move(owned);
  out.needle_size = needle_size;
  out.needle_version = static_cast<uint8_t>(version);
  out.generation = generation;
  return out;
}

// The pieces of an EC record held here (ResolvedNeedle::ec_partial). Without a verified token
// the cookie is the only thing that makes a fid readable (as on the volume server): pieces go
// out only when it was checked here, so guessing needle ids yields nothing.
CheckedRecord EcPiecesRecord(const ResolvedNeedle& found, bool token_checked) {
  const LookupResult& r = found.result;
  const EcExport& e = *found.ec_partial;
  if (!token_checked && !found.ec_cookie_checked) {
    return Refusal(ReadStatus::kUnknownVolume, r.volume_id,
                   fmt::format("{}; without read tokens this agent sends pieces of a needle only "
                               "when it holds the needle's header (its cookie is checked there)",
                               r.error));
  }
  auto local = e.LocalPieces(found.ec_where);
  if (!local) {
    const ReadStatus status = local.error().code() == Code::kNotFound ? ReadStatus::kNotFound
                              : local.error().code() == Code::kUnavailable
                                  ? ReadStatus::kUnknownVolume
                                  : ReadStatus::kInternal;
    return Refusal(status, r.volume_id, local.error().message());
  }
  auto head = EncodeEcPiecesHead(found.ec_where.length, local->pieces);
  if (!head) return Refusal(ReadStatus::kInternal, r.volume_id, head.error().message());
  head->insert(head->end(), local->bytes.begin(), local->bytes.end());
  CheckedRecord out =
      Assembled(r.volume_id, std::move(*head), found.ec_where.size, found.version, e.generation());
  out.pieces = true;
  return out;
}

}  // namespace

ReadReplyHeader CheckedRecord::Header(uint64_t request_id, uint32_t index) const {
  return {.status = status,
          .needle_version = needle_version,
          .request_id = request_id,
          .index = index,
          .volume_id = volume_id,
          .generation = generation,
          .length = status == ReadStatus::kOk ? record.size() : reason.size(),
          .needle_size = needle_size,
          .pieces = status == ReadStatus::kOk && pieces};
}

std::span<const uint8_t> CheckedRecord::data() const {
  if (status == ReadStatus::kOk) return record;
  return {reinterpret_cast<const uint8_t*>(reason.data()), reason.size()};
}

CheckedRecord CheckRead(const VolumeSet& volumes, const VolumeMap& map, const ReadAuthorizer* auth,
                        const ReadRequestEntry& e, bool ec_pieces) {
  bool token_checked = false;  // a token was verified for this fid (not: authorization off)
  if (auth != nullptr) {
    if (Status s = auth->Check(e.token, e.fid, &token_checked); !s.ok()) {
      // The same answer for every reason (as the volume server's "wrong jwt").
      return Refusal(ReadStatus::kDenied, 0, "wrong jwt");
    }
  }
  ResolvedNeedle found = volumes.Resolve(e.fid, map);
  const LookupResult& r = found.result;
  if (r.status == LookupStatus::kOk && found.ec != nullptr) {
    auto bytes = CopyRecord(found);
    if (!bytes) return Refusal(ReadStatus::kNotFound, r.volume_id, bytes.error().message());
    return Assembled(r.volume_id, std::move(*bytes), r.size, found.version, r.generation);
  }
  if (ec_pieces && found.ec_partial != nullptr) return EcPiecesRecord(found, token_checked);
  if (r.status != LookupStatus::kOk || found.exported == nullptr) {
    return Refusal(ToReadStatus(r.status), r.volume_id, r.error);
  }
  // The index answer is checked once more against the export it will be sent from: only bytes
  // inside the served part of this generation's mapping ever leave.
  const auto bytes = found.exported->bytes();
  if (found.offset > bytes.size() || r.length > bytes.size() - found.offset) {
    return Refusal(ReadStatus::kNotFound, r.volume_id,
                   "the record lies outside the exported file; retry after the next scan");
  }
  CheckedRecord out;
  out.status = ReadStatus::kOk;
  out.volume_id = r.volume_id;
  out.record = bytes.subspan(found.offset, r.length);
  out.needle_size = r.size;
  out.needle_version = static_cast<uint8_t>(found.exported->version());
  out.generation = found.exported->generation();
  out.source = std::move(found.exported);
  return out;
}

}  // namespace swrdma::agent
