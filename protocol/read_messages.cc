#include "protocol/read_messages.h"

#include <cstring>

#include <fmt/format.h>

namespace swrdma {
namespace {

// Little-endian, whatever the host: the wire format is fixed.
void Put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v));
  out.push_back(static_cast<uint8_t>(v >> 8));
}
void Put32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void Put64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void Store(uint8_t* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t Load(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= uint64_t{p[i]} << (8 * i);
  return v;
}

// A cursor over untrusted bytes: every read checks what is left first.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  bool Take(size_t n, const uint8_t** out) {
    if (bytes_.size() - pos_ < n) return false;
    *out = bytes_.data() + pos_;
    pos_ += n;
    return true;
  }
  bool Int(int n, uint64_t* v) {
    const uint8_t* p = nullptr;
    if (!Take(static_cast<size_t>(n), &p)) return false;
    *v = Load(p, n);
    return true;
  }
  size_t left() const { return bytes_.size() - pos_; }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

Status Malformed(std::string what) {
  return Status(Code::kInvalidArgument, "malformed read request: " + std::move(what));
}

}  // namespace

std::string_view ReadStatusName(ReadStatus s) {
  switch (s) {
    case ReadStatus::kOk:
      return "ok";
    case ReadStatus::kNotFound:
      return "not_found";
    case ReadStatus::kDeleted:
      return "deleted";
    case ReadStatus::kBadFid:
      return "bad_fid";
    case ReadStatus::kUnknownVolume:
      return "unknown_volume";
    case ReadStatus::kDenied:
      return "denied";
    case ReadStatus::kExpired:
      return "expired";
    case ReadStatus::kInternal:
      return "internal";
  }
  return "unknown";
}

Result<std::vector<uint8_t>> EncodeReadRequest(const ReadRequest& request) {
  if (request.entries.empty() || request.entries.size() > kMaxReadBatch) {
    return Error(Code::kInvalidArgument, fmt::format("a read request takes 1 to {} fids, not {}",
                                                     kMaxReadBatch, request.entries.size()));
  }
  std::vector<uint8_t> out;
  size_t total = kReadRequestFixedBytes + (request.push ? kReadPushBlockBytes : 0);
  for (const auto& e : request.entries)
    total += 3 + e.fid.size() + e.token.size();
  if (total > kMaxReadRequestBytes) {
    return Error(Code::kInvalidArgument,
                 fmt::format("a read request of {} bytes is over the limit of {}; send fewer fids "
                             "per request",
                             total, kMaxReadRequestBytes));
  }
  out.reserve(total);
  Put32(out, kReadRequestMagic);
  Put16(out, kReadProtocolVersion);
  Put16(out, static_cast<uint16_t>((request.push ? kReadRequestPush : 0) |
                                   (request.ec_pieces ? kReadRequestEcPieces : 0)));
  Put64(out, request.request_id);
  Put32(out, static_cast<uint32_t>(request.entries.size()));
  if (request.push) {
    out.insert(out.end(), request.push->nonce.begin(), request.push->nonce.end());
    Put64(out, request.push->address);
    Put32(out, request.push->rkey);
    Put32(out, 0);
    Put64(out, request.push->length);
  }
  for (size_t i = 0; i < request.entries.size(); ++i) {
    const auto& e = request.entries[i];
    if (e.fid.empty() || e.fid.size() > kMaxReadFidBytes) {
      return Error(Code::kInvalidArgument,
                   fmt::format("fid {} of the read request is {} bytes; 1 to {} are allowed", i,
                               e.fid.size(), kMaxReadFidBytes));
    }
    if (e.token.size() > kMaxReadTokenBytes) {
      return Error(Code::kInvalidArgument,
                   fmt::format("the read token of fid {} is {} bytes; at most {} are allowed", i,
                               e.token.size(), kMaxReadTokenBytes));
    }
    out.push_back(static_cast<uint8_t>(e.fid.size()));
    out.insert(out.end(), e.fid.begin(), e.fid.end());
    Put16(out, static_cast<uint16_t>(e.token.size()));
    out.insert(out.end(), e.token.begin(), e.token.end());
  }
  return out;
}

Result<ReadRequest> DecodeReadRequest(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxReadRequestBytes) {
    return Error(Malformed(
        fmt::format("{} bytes, over the limit of {}", bytes.size(), kMaxReadRequestBytes)));
  }
  Reader r(bytes);
  uint64_t magic = 0, version = 0, flags = 0, id = 0, count = 0;
  if (!r.Int(4, &magic) || !r.Int(2, &version) || !r.Int(2, &flags) || !r.Int(8, &id) ||
      !r.Int(4, &count)) {
    return Error(Malformed(fmt::format("{} bytes, shorter than the fixed header", bytes.size())));
  }
  if (magic != kReadRequestMagic) return Error(Malformed("wrong magic"));
  if (version != kReadProtocolVersion) {
    return Error(Malformed(
        fmt::format("protocol version {}; this agent speaks {}", version, kReadProtocolVersion)));
  }
  if ((flags & ~uint64_t{kReadRequestPush | kReadRequestEcPieces}) != 0) {
    return Error(Malformed(fmt::format("unknown flags {:#x}", flags)));
  }
  if (count == 0 || count > kMaxReadBatch) {
    return Error(Malformed(fmt::format("{} fids; 1 to {} are allowed", count, kMaxReadBatch)));
  }
  ReadRequest out;
  out.ec_pieces = (flags & kReadRequestEcPieces) != 0;
  if (flags & kReadRequestPush) {
    const uint8_t* nonce = nullptr;
    uint64_t address = 0, rkey = 0, zero = 0, length = 0;
    if (!r.Take(kPushNonceBytes, &nonce) || !r.Int(8, &address) || !r.Int(4, &rkey) ||
        !r.Int(4, &zero) || !r.Int(8, &length)) {
      return Error(Malformed("the push landing block is cut off"));
    }
    if (zero != 0 || length == 0 || address + length < address) {
      return Error(Malformed("the push landing block names no valid range"));
    }
    PushLanding p;
    std::memcpy(p.nonce.data(), nonce, kPushNonceBytes);
    p.address = address;
    p.rkey = static_cast<uint32_t>(rkey);
    p.length = length;
    out.push = p;
  }
  // Each entry takes at least 4 bytes: a count the data cannot hold is refused before any
  // allocation sized by it.
  if (count * 4 > r.left()) {
    return Error(Malformed(fmt::format("{} fids announced in {} bytes", count, r.left())));
  }
  out.request_id = id;
  out.entries.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t fid_len = 0, token_len = 0;
    const uint8_t* fid = nullptr;
    const uint8_t* token = nullptr;
    if (!r.Int(1, &fid_len) || fid_len == 0 || fid_len > kMaxReadFidBytes ||
        !r.Take(fid_len, &fid)) {
      return Error(Malformed(fmt::format("fid {} is empty, too long or cut off", i)));
    }
    if (!r.Int(2, &token_len) || token_len > kMaxReadTokenBytes || !r.Take(token_len, &token)) {
      return Error(Malformed(fmt::format("the token of fid {} is too long or cut off", i)));
    }
    out.entries[i].fid.assign(reinterpret_cast<const char*>(fid), fid_len);
    out.entries[i].token.assign(reinterpret_cast<const char*>(token), token_len);
  }
  if (r.left() != 0) {
    return Error(Malformed(fmt::format("{} bytes after the last fid", r.left())));
  }
  return out;
}

void EncodeReadReplyHeader(const ReadReplyHeader& h,
                           std::span<uint8_t, kReadReplyHeaderBytes> out) {
  uint8_t* p = out.data();
  Store(p, kReadReplyMagic, 4);
  Store(p + 4, kReadProtocolVersion, 2);
  p[6] = static_cast<uint8_t>(h.status);
  p[7] = h.needle_version;
  Store(p + 8, h.request_id, 8);
  Store(p + 16, h.index, 4);
  Store(p + 20, h.volume_id, 4);
  Store(p + 24, h.generation, 8);
  Store(p + 32, h.length, 8);
  Store(p + 40, h.needle_size, 4);
  Store(p + 44, (h.landed ? kReplyLanded : 0) | (h.pieces ? kReplyPieces : 0), 4);
}

Result<ReadReplyHeader> DecodeReadReplyHeader(std::span<const uint8_t> bytes) {
  if (bytes.size() != kReadReplyHeaderBytes) {
    return Error(Code::kInvalidArgument,
                 fmt::format("malformed read reply: a {} byte header, not {}", bytes.size(),
                             kReadReplyHeaderBytes));
  }
  const uint8_t* p = bytes.data();
  if (Load(p, 4) != kReadReplyMagic || Load(p + 4, 2) != kReadProtocolVersion) {
    return Error(Code::kInvalidArgument, "malformed read reply: wrong magic or version");
  }
  if (p[6] > static_cast<uint8_t>(ReadStatus::kInternal)) {
    return Error(Code::kInvalidArgument,
                 fmt::format("malformed read reply: unknown status {}", p[6]));
  }
  ReadReplyHeader h;
  h.status = static_cast<ReadStatus>(p[6]);
  h.needle_version = p[7];
  h.request_id = Load(p + 8, 8);
  h.index = static_cast<uint32_t>(Load(p + 16, 4));
  h.volume_id = static_cast<uint32_t>(Load(p + 20, 4));
  h.generation = Load(p + 24, 8);
  h.length = Load(p + 32, 8);
  h.needle_size = static_cast<uint32_t>(Load(p + 40, 4));
  const uint64_t flags = Load(p + 44, 4);
  if ((flags & ~uint64_t{kReplyLanded | kReplyPieces}) != 0 ||
      (flags != 0 && h.status != ReadStatus::kOk) ||
      ((flags & kReplyLanded) && (flags & kReplyPieces))) {
    return Error(Code::kInvalidArgument,
                 fmt::format("malformed read reply: flags {:#x} with status {}", flags,
                             ReadStatusName(h.status)));
  }
  h.landed = (flags & kReplyLanded) != 0;
  h.pieces = (flags & kReplyPieces) != 0;
  return h;
}

namespace {

// Why `pieces` cannot describe parts of a record of `record_length` bytes; empty when they can.
std::string PiecesProblem(uint64_t record_length, std::span<const EcPiece> pieces) {
  if (pieces.empty() || pieces.size() > kMaxEcPieces) {
    return fmt::format("{} pieces; 1 to {} are allowed", pieces.size(), kMaxEcPieces);
  }
  uint64_t end = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const EcPiece& p = pieces[i];
    if (p.size == 0 || p.record_offset < end || p.record_offset > record_length ||
        p.size > record_length - p.record_offset) {
      return fmt::format(
          "piece {} ({} bytes at {}) is empty, out of order, overlapping or past "
          "the record's {} bytes",
          i, p.size, p.record_offset, record_length);
    }
    end = p.record_offset + p.size;
  }
  return {};
}

}  // namespace

Result<std::vector<uint8_t>> EncodeEcPiecesHead(uint64_t record_length,
                                                std::span<const EcPiece> pieces) {
  if (std::string why = PiecesProblem(record_length, pieces); !why.empty()) {
    return Error(Code::kInvalidArgument, "EC pieces: " + why);
  }
  std::vector<uint8_t> out;
  out.reserve(kEcPiecesFixedBytes + pieces.size() * kEcPieceEntryBytes);
  Put64(out, record_length);
  Put32(out, static_cast<uint32_t>(pieces.size()));
  for (const EcPiece& p : pieces) {
    Put64(out, p.record_offset);
    Put64(out, p.size);
  }
  return out;
}

Result<EcPiecesView> DecodeEcPieces(std::span<const uint8_t> block) {
  Reader r(block);
  uint64_t length = 0, count = 0;
  if (!r.Int(8, &length) || !r.Int(4, &count)) {
    return Error(Code::kCorruption, fmt::format("EC pieces: a {} byte block", block.size()));
  }
  if (count == 0 || count > kMaxEcPieces || count * kEcPieceEntryBytes > r.left()) {
    return Error(Code::kCorruption,
                 fmt::format("EC pieces: {} pieces announced in {} bytes", count, r.left()));
  }
  EcPiecesView out;
  out.record_length = length;
  out.pieces.resize(count);
  uint64_t total = 0;
  for (EcPiece& p : out.pieces) {
    r.Int(8, &p.record_offset);
    r.Int(8, &p.size);
    total += std::min<uint64_t>(p.size, length);  // bounded: no overflow past 4096 x length
  }
  if (std::string why = PiecesProblem(length, out.pieces); !why.empty()) {
    return Error(Code::kCorruption, "EC pieces: " + why);
  }
  if (total != r.left()) {
    return Error(Code::kCorruption,
                 fmt::format("EC pieces: {} bytes of pieces announced, {} sent", total, r.left()));
  }
  const uint8_t* bytes = nullptr;
  r.Take(r.left(), &bytes);
  out.bytes = std::span<const uint8_t>(bytes, total);
  return out;
}

}  // namespace swrdma
