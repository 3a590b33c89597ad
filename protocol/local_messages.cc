#include "protocol/local_messages.h"

#include <cstring>

#include <fmt/format.h>

namespace swrdma {
namespace {

class Writer {
 public:
  template <typename T>
  Writer& Put(T v) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));
    return *this;
  }
  Writer& Text(std::string_view s, size_t max) {
    s = s.substr(0, max);
    Put(static_cast<uint16_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
    return *this;
  }
  Writer& Header(LocalOp op) { return Put(kLocalMagic).Put(static_cast<uint8_t>(op)); }
  std::vector<uint8_t> Take() { return std::move(out_); }

 private:
  std::vector<uint8_t> out_;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  template <typename T>
  bool Get(T& v) {
    if (in_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Text(std::string& s) {
    uint16_t n = 0;
    if (!Get(n) || in_.size() - pos_ < n) return false;
    s.assign(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  bool Status(LocalStatus& s) {
    uint8_t v = 0;
    if (!Get(v) || v > static_cast<uint8_t>(LocalStatus::kChecked)) return false;
    s = static_cast<LocalStatus>(v);
    return true;
  }
  // Magic and the expected op.
  bool Header(LocalOp want) {
    uint32_t magic = 0;
    uint8_t op = 0;
    return Get(magic) && magic == kLocalMagic && Get(op) && op == static_cast<uint8_t>(want);
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

Status Malformed(std::string_view what) {
  return Status(
      Code::kCorruption,
      fmt::format("malformed local-socket {} (agent and client of different versions?)", what));
}

}  // namespace

std::string_view LocalStatusName(LocalStatus s) {
  switch (s) {
    case LocalStatus::kOk:
      return "ok";
    case LocalStatus::kDenied:
      return "denied";
    case LocalStatus::kUnknownVolume:
      return "unknown_volume";
    case LocalStatus::kNotFound:
      return "not_found";
    case LocalStatus::kDeleted:
      return "deleted";
    case LocalStatus::kBadFid:
      return "bad_fid";
    case LocalStatus::kBadRequest:
      return "bad_request";
    case LocalStatus::kInternal:
      return "internal";
    case LocalStatus::kStale:
      return "stale";
    case LocalStatus::kChecked:
      return "checked";
  }
  return "unknown";
}

Code LocalStatusCode(LocalStatus s) {
  switch (s) {
    case LocalStatus::kOk:
      return Code::kOk;
    case LocalStatus::kDenied:
      return Code::kPermissionDenied;
    case LocalStatus::kUnknownVolume:
      return Code::kUnknownVolume;
    case LocalStatus::kNotFound:
      return Code::kNotFound;
    case LocalStatus::kDeleted:
      return Code::kDeleted;
    case LocalStatus::kBadFid:
      return Code::kInvalidArgument;
    case LocalStatus::kBadRequest:
      return Code::kInvalidArgument;
    case LocalStatus::kInternal:
      return Code::kUnavailable;
    case LocalStatus::kStale:
      return Code::kStale;
    case LocalStatus::kChecked:
      return Code::kUnsupported;  // only when no checked read is possible: see LocalRound
  }
  return Code::kInternal;
}

std::vector<uint8_t> EncodeLocalRequest(const LocalRequest& r) {
  Writer w;
  w.Header(r.op);
  if (r.op == LocalOp::kOpen) w.Put(r.volume_id);
  if (r.op == LocalOp::kLookup) {
    w.Put(static_cast<uint16_t>(r.fids.size()));
    for (const auto& f : r.fids)
      w.Text(f, 256);
  }
  return w.Take();
}

Result<LocalRequest> DecodeLocalRequest(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  uint32_t magic = 0;
  uint8_t op = 0;
  if (!r.Get(magic) || magic != kLocalMagic || !r.Get(op)) return Error(Malformed("request"));
  LocalRequest out;
  switch (op) {
    case static_cast<uint8_t>(LocalOp::kHello):
      out.op = LocalOp::kHello;
      break;
    case static_cast<uint8_t>(LocalOp::kOpen):
      out.op = LocalOp::kOpen;
      if (!r.Get(out.volume_id)) return Error(Malformed("open request"));
      break;
    case static_cast<uint8_t>(LocalOp::kLookup): {
      out.op = LocalOp::kLookup;
      uint16_t n = 0;
      if (!r.Get(n) || n > kMaxLocalLookup) return Error(Malformed("lookup request"));
      out.fids.resize(n);
      for (auto& f : out.fids)
        if (!r.Text(f)) return Error(Malformed("lookup request"));
      break;
    }
    default:
      return Error(Malformed(fmt::format("request (op {})", op)));
  }
  if (!r.done()) return Error(Malformed("request (trailing bytes)"));
  return out;
}

std::vector<uint8_t> EncodeHelloReply(const LocalHelloReply& r) {
  Writer w;
  w.Header(LocalOp::kHello).Put(static_cast<uint8_t>(r.status)).Put(r.instance).Put(r.max_lookup);
  w.Text(r.reason, kMaxLocalReason * 4);
  return w.Take();
}

Result<LocalHelloReply> DecodeHelloReply(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  LocalHelloReply out;
  if (!r.Header(LocalOp::kHello) || !r.Status(out.status) || !r.Get(out.instance) ||
      !r.Get(out.max_lookup) || !r.Text(out.reason) || !r.done()) {
    return Error(Malformed("hello reply"));
  }
  return out;
}

std::vector<uint8_t> EncodeOpenReply(const LocalOpenReply& r) {
  Writer w;
  w.Header(LocalOp::kOpen)
      .Put(static_cast<uint8_t>(r.status))
      .Put(r.volume_id)
      .Put(r.generation)
      .Put(r.size)
      .Put(r.version)
      .Text(r.reason, kMaxLocalReason * 4);
  return w.Take();
}

Result<LocalOpenReply> DecodeOpenReply(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  LocalOpenReply out;
  if (!r.Header(LocalOp::kOpen) || !r.Status(out.status) || !r.Get(out.volume_id) ||
      !r.Get(out.generation) || !r.Get(out.size) || !r.Get(out.version) || !r.Text(out.reason) ||
      !r.done()) {
    return Error(Malformed("open reply"));
  }
  return out;
}

std::vector<uint8_t> EncodeLookupReply(LocalStatus status, std::span<const LocalLookupEntry> e) {
  Writer w;
  w.Header(LocalOp::kLookup).Put(static_cast<uint8_t>(status)).Put(static_cast<uint16_t>(e.size()));
  for (const auto& x : e) {
    w.Put(static_cast<uint8_t>(x.status))
        .Put(x.volume_id)
        .Put(x.generation)
        .Put(x.offset)
        .Put(x.length)
        .Put(x.size)
        .Put(x.version)
        .Text(x.reason, kMaxLocalReason);
  }
  return w.Take();
}

Result<std::vector<LocalLookupEntry>> DecodeLookupReply(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  LocalStatus status{};
  uint16_t n = 0;
  if (!r.Header(LocalOp::kLookup) || !r.Status(status) || !r.Get(n)) {
    return Error(Malformed("lookup reply"));
  }
  if (status != LocalStatus::kOk) {
    return Error(LocalStatusCode(status),
                 fmt::format("local lookup refused: {}", LocalStatusName(status)));
  }
  std::vector<LocalLookupEntry> out(n);
  for (auto& x : out) {
    if (!r.Status(x.status) || !r.Get(x.volume_id) || !r.Get(x.generation) || !r.Get(x.offset) ||
        !r.Get(x.length) || !r.Get(x.size) || !r.Get(x.version) || !r.Text(x.reason)) {
      return Error(Malformed("lookup reply"));
    }
  }
  if (!r.done()) return Error(Malformed("lookup reply (trailing bytes)"));
  return out;
}

}  // namespace swrdma
