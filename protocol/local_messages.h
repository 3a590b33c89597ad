// The same-host read protocol (issue 18): what the agent's Unix socket (agent/local_server.h) and
// the client's local reader (client/local_reader.h) say to each other.
//
// One message per SOCK_SEQPACKET packet (boundaries kept by the kernel), host byte order (both
// ends are on one host), at most kMaxLocalMessage bytes. Every message starts with kLocalMagic and
// the op; every reply repeats the op and carries a status.
//
//   (on connect, unasked) hello reply: instance id (matches /v1/info "local_instance": the socket
//          belongs to that agent), or kDenied and why; a client reads it before writing
//   hello  -> the same reply again
//   open   vid -> generation, served size, needle version, and a read-only descriptor of the
//                 volume's .dat (SCM_RIGHTS) when the status is ok
//   lookup fids -> per fid: status, volume, generation, record offset in the file, record length,
//                  needle size, version (the agent's index answers, as POST /v1/lookup)
//
// A peer not on the allow-list receives the greeting with kDenied and the reason, then EOF.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"

namespace swrdma {

inline constexpr uint32_t kLocalMagic = 0x314C5753;  // "SWL1"
// Below the default socket buffer (net.core.wmem_default 208 KiB): one packet always fits.
inline constexpr size_t kMaxLocalMessage = 64 * 1024;
// Fids in one lookup request: a reply entry is 36 bytes plus a reason of at most
// kMaxLocalReason bytes, so a whole reply fits a packet.
inline constexpr size_t kMaxLocalLookup = 256;
inline constexpr size_t kMaxLocalReason = 200;

enum class LocalOp : uint8_t { kHello = 1, kOpen = 2, kLookup = 3 };

enum class LocalStatus : uint8_t {
  kOk = 0,
  kDenied = 1,         // peer not on the allow-list (hello), nothing else is answered
  kUnknownVolume = 2,  // not exported by this agent
  kNotFound = 3,
  kDeleted = 4,
  kBadFid = 5,
  kBadRequest = 6,  // the request did not parse
  kInternal = 7,    // the agent could not open the file
  kStale = 8,       // the export changed while answering: ask again
  // Not in one file this socket can hand out (an erasure-coded volume: its pieces lie in several
  // shard files): read it with a checked read instead, from the same agent.
  kChecked = 9,
};

struct LocalHelloReply {
  LocalStatus status = LocalStatus::kOk;
  uint64_t instance = 0;
  uint32_t max_lookup = kMaxLocalLookup;
  std::string reason;  // for anything but ok
};

struct LocalOpenReply {
  LocalStatus status = LocalStatus::kOk;
  uint32_t volume_id = 0;
  uint64_t generation = 0;
  uint64_t size = 0;  // bytes of the file that are served (indexed) right now
  uint8_t version = 3;
  std::string reason;
};

struct LocalLookupEntry {
  LocalStatus status = LocalStatus::kOk;
  uint32_t volume_id = 0;
  uint64_t generation = 0;
  uint64_t offset = 0;  // of the whole record in the .dat
  uint64_t length = 0;  // record length including padding
  uint32_t size = 0;    // needle size from the index
  uint8_t version = 3;
  std::string reason;  // for anything but ok
};

struct LocalRequest {
  LocalOp op = LocalOp::kHello;
  uint32_t volume_id = 0;         // open
  std::vector<std::string> fids;  // lookup
};

std::string_view LocalStatusName(LocalStatus s);
// The read error for a non-ok status ("unknown_volume" -> Code::kUnknownVolume, ...).
Code LocalStatusCode(LocalStatus s);

std::vector<uint8_t> EncodeLocalRequest(const LocalRequest& r);
Result<LocalRequest> DecodeLocalRequest(std::span<const uint8_t> bytes);

std::vector<uint8_t> EncodeHelloReply(const LocalHelloReply& r);
Result<LocalHelloReply> DecodeHelloReply(std::span<const uint8_t> bytes);
std::vector<uint8_t> EncodeOpenReply(const LocalOpenReply& r);
Result<LocalOpenReply> DecodeOpenReply(std::span<const uint8_t> bytes);
std::vector<uint8_t> EncodeLookupReply(LocalStatus status, std::span<const LocalLookupEntry> r);
// The per-fid entries (status kOk), or the reply's own status as an error.
Result<std::vector<LocalLookupEntry>> DecodeLookupReply(std::span<const uint8_t> bytes);

}  // namespace swrdma
