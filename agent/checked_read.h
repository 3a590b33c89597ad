// One fid of a checked read (protocol/read_messages.h), decided: the token checked, the record
// resolved in the index and bounds-checked against the export it will be sent from. Shared by
// every transport that serves checked reads (agent/read_server.h over UCX active messages,
// agent/tcp_read_server.h over plain TCP), so they refuse and serve exactly the same fids.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "agent/read_auth.h"
#include "agent/volume_set.h"
#include "protocol/read_messages.h"

namespace swrdma::agent {

struct CheckedRecord {
  ReadStatus status = ReadStatus::kInternal;
  uint32_t volume_id = 0;
  std::string reason;  // a refusal's reason (the reply's data), empty for kOk
  // kOk: the export the record is sent from (keep it alive until the bytes are sent) and the
  // record inside its mapping.
  std::shared_ptr<const ExportedVolume> source;
  // An EC record assembled from the shards (agent/ec_export.h): `record` points into it, and it
  // must live until the bytes are sent. Null for a `.dat` record (sent from the mapping).
  std::shared_ptr<const std::vector<uint8_t>> assembled;
  std::span<const uint8_t> record;
  uint32_t needle_size = 0;
  uint8_t needle_version = 0;
  uint64_t generation = 0;
  bool pieces = false;  // kOk: `record` is an EcPieces block (protocol/read_messages.h)

  // The reply header for entry `index` of request `request_id`.
  ReadReplyHeader Header(uint64_t request_id, uint32_t index) const;
  // The reply's data: the record, or the reason.
  std::span<const uint8_t> data() const;
};

// `auth` may be null (no tokens needed). `ec_pieces`: the request's kReadRequestEcPieces (an EC
// record not held whole here is answered with the pieces held here, when its read is
// authorized: by its token, or without tokens by its cookie, checked only where the record's
// header is held). Never throws; every failure is a refusal.
// `map`: the volumes' snapshot the caller holds for the whole request.
CheckedRecord CheckRead(const VolumeSet& volumes, const VolumeMap& map, const ReadAuthorizer* auth,
                        const ReadRequestEntry& entry, bool ec_pieces = false);

}  // namespace swrdma::agent
