// The checked read protocol: what a client and an agent exchange as UCX active messages (and any
// other message transport) when the agent, not the NIC, decides what a reader may see.
//
// One request names a batch of fids, each with an optional SeaweedFS read token. The agent
// resolves each in its index, checks the token, checks that the record lies inside the exported
// mapping of the current generation, and answers every fid with one reply: a fixed header plus,
// for `kOk`, the whole needle record (sent straight from the mapping), or else a short reason.
// The client verifies the record exactly as after a one-sided read (id, cookie, size, CRC).
//
// Request (all in the AM data; integers little-endian):
//   u32 magic "SWRQ" | u16 version | u16 flags | u64 request_id | u32 count
//   [flags & kReadRequestPush: u8 nonce[16] | u64 landing address | u32 rkey | u32 0 |
//    u64 landing length]
//   count x { u8 fid_len (1..kMaxReadFidBytes) | fid bytes | u16 token_len | token bytes }
// Reply (AM header, kReadReplyHeaderBytes; the data is the record or the reason text):
//   u32 magic "SWRP" | u16 version | u8 status | u8 needle_version | u64 request_id
//   u32 index | u32 volume_id | u64 generation | u64 length (of the data)
//   u32 needle_size (the index's size of the needle, for the reader's header check) | u32 flags
//
// Push (over verbs, agent/verbs_exporter.h): a request may offer a landing buffer the client
// registered for remote writes, on the verbs connection its nonce names. The agent may then RDMA
// WRITE a kOk record there instead of sending it: the reply says so (flags & kReplyLanded) and
// carries no data; header.length is the record's length. Landed records of one request lie in
// request order, each at the first 8-byte aligned offset after the previous landed one (the
// first at 0), all inside the landing. The agent answers only after those writes completed. The
// offer binds the agent to nothing: any record may come inline as without it.
//
// EC pieces (agent/ec_export.h): a request with kReadRequestEcPieces asks, for every fid in an
// erasure-coded volume whose record this agent cannot assemble whole (a data shard is held by
// another server), for the parts of the record it holds: a kOk reply with flags & kReplyPieces
// whose data is an EcPieces block (below). The client collects the pieces from the holders the
// master lists and verifies the assembled record as any other. A record the agent holds whole
// comes whole, as without the flag.
//   EcPieces: u64 record_length | u32 count | count x { u64 record_offset | u64 size } |
//             the bytes of every piece, in that order
//   Pieces are non-empty, in increasing record order, disjoint and inside the record.
//
// Decoding never trusts a length: every field is bounds-checked against what arrived, and a
// malformed request is answered with nothing (there is no request id to answer to) and counted.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"

namespace swrdma {

// UCX active message ids (ucp_worker_set_am_recv_handler): requests go to the agent, replies to
// the client. Both sides register only their own.
inline constexpr uint16_t kReadRequestAmId = 0x5352;
inline constexpr uint16_t kReadReplyAmId = 0x5353;
inline constexpr uint16_t kReadProtocolVersion = 1;
inline constexpr uint32_t kReadRequestMagic = 0x51525753;  // "SWRQ" little-endian
inline constexpr uint32_t kReadReplyMagic = 0x50525753;    // "SWRP"
inline constexpr size_t kMaxReadBatch = 4096;              // fids in one request
inline constexpr size_t kMaxReadFidBytes = 64;             // "4294967295,ffffffffffffffff..."
inline constexpr size_t kMaxReadTokenBytes = 4096;
inline constexpr size_t kReadReplyHeaderBytes = 48;
// A request larger than this is refused before it is parsed; clients split larger batches (a
// batch of 4096 fids with 900-byte tokens fits).
inline constexpr size_t kMaxReadRequestBytes = size_t{4} << 20;
inline constexpr size_t kReadRequestFixedBytes = 20;
inline constexpr uint16_t kReadRequestPush = 1;  // request flags: a landing block follows
inline constexpr size_t kReadPushBlockBytes = 40;
inline constexpr uint32_t kReplyLanded = 1;  // reply flags: the record was written to the landing
inline constexpr size_t kPushNonceBytes = 16;
inline constexpr uint16_t kReadRequestEcPieces = 2;  // request flags: EC pieces wanted
inline constexpr uint32_t kReplyPieces = 2;          // reply flags: the data is an EcPieces block
inline constexpr size_t kMaxEcPieces = 4096;         // pieces in one EcPieces block
inline constexpr size_t kEcPiecesFixedBytes = 12;
inline constexpr size_t kEcPieceEntryBytes = 16;

enum class ReadStatus : uint8_t {
  kOk = 0,
  kNotFound = 1,
  kDeleted = 2,
  kBadFid = 3,
  kUnknownVolume = 4,
  kDenied = 5,    // the read token is missing, expired or for another fid
  kExpired = 6,   // the needle's TTL has passed
  kInternal = 7,  // the agent could not serve it (its reason is in the data)
};
std::string_view ReadStatusName(ReadStatus s);  // "ok", "not_found", ..., "denied"

struct ReadRequestEntry {
  std::string fid;    // as the client names it ("3,01637037d6")
  std::string token;  // SeaweedFS read token, empty when none
};

// A client's landing buffer for push (see above): where the agent may RDMA WRITE records.
struct PushLanding {
  std::array<uint8_t, kPushNonceBytes> nonce{};  // the verbs connection's (its accept's data)
  uint64_t address = 0;                          // remote virtual address of the first byte
  uint32_t rkey = 0;
  uint64_t length = 0;
};

// Where the landed record after one that ended at `end` starts.
inline constexpr uint64_t NextLandingOffset(uint64_t end) {
  return (end + 7) & ~uint64_t{7};
}

struct ReadRequest {
  uint64_t request_id = 0;
  std::vector<ReadRequestEntry> entries;
  std::optional<PushLanding> push;
  bool ec_pieces = false;  // kReadRequestEcPieces
};

// Bytes of the request; kInvalidArgument naming the entry when a fid or token is too long or
// the batch is too large.
Result<std::vector<uint8_t>> EncodeReadRequest(const ReadRequest& request);
// Parses a request; kInvalidArgument saying what is malformed. Never reads past `bytes`.
Result<ReadRequest> DecodeReadRequest(std::span<const uint8_t> bytes);

struct ReadReplyHeader {
  ReadStatus status = ReadStatus::kOk;
  uint8_t needle_version = 0;
  uint64_t request_id = 0;
  uint32_t index = 0;  // which entry of the request
  uint32_t volume_id = 0;
  uint64_t generation = 0;   // the export the record was sent from
  uint64_t length = 0;       // bytes of data that follow (the record, or the reason)
  uint32_t needle_size = 0;  // kOk: the needle's size as the index has it
  bool landed = false;       // kOk: written to the request's landing, no data follows
  bool pieces = false;       // kOk: the data is an EcPieces block, not the record
};

void EncodeReadReplyHeader(const ReadReplyHeader& header,
                           std::span<uint8_t, kReadReplyHeaderBytes> out);
Result<ReadReplyHeader> DecodeReadReplyHeader(std::span<const uint8_t> bytes);

// One piece of an EC record: `size` bytes at `record_offset`.
struct EcPiece {
  uint64_t record_offset = 0;
  uint64_t size = 0;
  friend bool operator==(const EcPiece&, const EcPiece&) = default;
};

// A decoded EcPieces block: the pieces and their bytes (a view into the block).
struct EcPiecesView {
  uint64_t record_length = 0;
  std::vector<EcPiece> pieces;
  std::span<const uint8_t> bytes;  // every piece's bytes, in order
};

// The block's fixed part and piece table (the caller appends the bytes). kInvalidArgument when
// the pieces break the rules above.
Result<std::vector<uint8_t>> EncodeEcPiecesHead(uint64_t record_length,
                                                std::span<const EcPiece> pieces);
// Parses a block; kCorruption saying what is wrong (a count, order, overlap, a piece past the
// record, or bytes that do not add up to the pieces). Never reads past `block`.
Result<EcPiecesView> DecodeEcPieces(std::span<const uint8_t> block);

}  // namespace swrdma
