#include "sidecar/filer_manifest.h"

#include <optional>

namespace swrdma::client {

namespace {

// A protobuf wire reader over one message's bytes: tags, varints, length-delimited fields.
class Wire {
 public:
  explicit Wire(std::span<const uint8_t> d) : d_(d) {}
  bool done() const { return pos_ == d_.size(); }

  std::optional<uint64_t> Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ == d_.size()) return std::nullopt;
      const uint8_t b = d_[pos_++];
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return std::nullopt;  // more than 10 bytes
  }
  std::optional<std::span<const uint8_t>> Bytes() {
    auto n = Varint();
    if (!n || *n > d_.size() - pos_) return std::nullopt;
    auto out = d_.subspan(pos_, *n);
    pos_ += *n;
    return out;
  }
  bool Skip(size_t n) {
    if (n > d_.size() - pos_) return false;
    pos_ += n;
    return true;
  }

 private:
  std::span<const uint8_t> d_;
  size_t pos_ = 0;
};

constexpr int kVarint = 0, kFixed32 = 5, kLen = 2;

// filer_pb.FileId {uint32 volume_id = 1; uint64 file_key = 2; fixed32 cookie = 3;}
bool IsFileId(std::span<const uint8_t> d) {
  Wire w(d);
  while (!w.done()) {
    auto tag = w.Varint();
    if (!tag) return false;
    const uint64_t field = *tag >> 3;
    const int type = static_cast<int>(*tag & 7);
    if ((field == 1 || field == 2) && type == kVarint) {
      if (!w.Varint()) return false;
    } else if (field == 3 && type == kFixed32) {
      if (!w.Skip(4)) return false;
    } else {
      return false;
    }
  }
  return true;
}

// filer_pb.FileChunk (fields 1-13); it must name its needle.
bool IsFileChunk(std::span<const uint8_t> d) {
  Wire w(d);
  bool names_needle = false;
  while (!w.done()) {
    auto tag = w.Varint();
    if (!tag) return false;
    const uint64_t field = *tag >> 3;
    const int type = static_cast<int>(*tag & 7);
    switch (field) {
      case 2:
      case 3:
      case 4:
      case 10:
      case 11:
      case 12:  // offset, size, mtime, bools, sse_type
        if (type != kVarint || !w.Varint()) return false;
        break;
      case 1:
      case 5:
      case 6:
      case 9:
      case 13: {  // file_id, e_tag, source_file_id, keys, sse
        if (type != kLen) return false;
        auto b = w.Bytes();
        if (!b) return false;
        if (field == 1 && !b->empty()) names_needle = true;
        break;
      }
      case 7:
      case 8: {  // fid, source_fid
        if (type != kLen) return false;
        auto b = w.Bytes();
        if (!b || !IsFileId(*b)) return false;
        if (field == 7 && !b->empty()) names_needle = true;
        break;
      }
      default:
        return false;
    }
  }
  return names_needle;
}

}  // namespace

bool LooksLikeFilerChunkManifest(std::span<const uint8_t> data) {
  Wire w(data);
  size_t chunks = 0;
  while (!w.done()) {
    auto tag = w.Varint();
    if (!tag || *tag != ((1u << 3) | kLen)) return false;  // only `repeated FileChunk chunks = 1`
    auto chunk = w.Bytes();
    if (!chunk || !IsFileChunk(*chunk)) return false;
    ++chunks;
  }
  return chunks > 0;
}

}  // namespace swrdma::client
