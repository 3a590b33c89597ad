#include "protocol/gzip.h"

#include <zlib.h>

#include <fmt/format.h>

namespace swrdma {

Result<std::vector<uint8_t>> Gunzip(std::span<const uint8_t> compressed, size_t max_output) {
  z_stream zs{};
  // 16 + MAX_WBITS: expect a gzip header (not raw zlib).
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    return Error(Code::kResourceExhausted, "gunzip: inflateInit2 failed (out of memory?)");
  }
  std::vector<uint8_t> out;
  out.resize(std::min<size_t>(max_output, std::max<size_t>(compressed.size() * 3, 4096)));
  zs.next_in = const_cast<Bytef*>(compressed.data());
  size_t in_left = compressed.size();
  size_t produced = 0;
  int rc = Z_OK;
  while (true) {
    const uInt in_chunk = static_cast<uInt>(std::min<size_t>(in_left, 1u << 30));
    zs.avail_in = in_chunk;
    if (produced == out.size()) {
      if (out.size() >= max_output) {
        inflateEnd(&zs);
        return Error(Code::kResourceExhausted,
                     fmt::format("gunzip: output exceeds the {} byte limit", max_output));
      }
      out.resize(std::min(max_output, out.size() * 2));
    }
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(std::min<size_t>(out.size() - produced, 1u << 30));
    const uInt out_before = zs.avail_out;
    rc = inflate(&zs, Z_NO_FLUSH);
    produced += out_before - zs.avail_out;
    in_left -= in_chunk - zs.avail_in;
    if (rc == Z_STREAM_END) {
      // A gzip file may hold several members, one after another (RFC 1952 2.2); Go's reader,
      // and so the volume server, returns all of them concatenated. Anything after a member
      // must be another member: a bad header there is corruption, as in Go.
      if (in_left == 0) break;
      if (inflateReset(&zs) != Z_OK) {
        inflateEnd(&zs);
        return Error(Code::kInternal, "gunzip: inflateReset failed");
      }
      continue;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      std::string why = zs.msg ? zs.msg : "invalid data";
      inflateEnd(&zs);
      return Error(Code::kCorruption, fmt::format("gunzip: {} (zlib code {})", why, rc));
    }
    if (rc == Z_BUF_ERROR && in_left == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      return Error(Code::kCorruption, "gunzip: stream truncated (no gzip trailer)");
    }
  }
  inflateEnd(&zs);
  out.resize(produced);
  return out;
}

bool IsGzipData(std::span<const uint8_t> data) {
  return data.size() >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

Result<std::vector<uint8_t>> DecompressNeedleData(std::span<const uint8_t> data,
                                                  size_t max_output) {
  if (!IsGzipData(data)) return std::vector<uint8_t>(data.begin(), data.end());
  return Gunzip(data, max_output);
}

Result<std::vector<uint8_t>> Gzip(std::span<const uint8_t> data, int level) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return Error(Code::kInvalidArgument,
                 fmt::format("gzip: deflateInit2 failed (level {})", level));
  }
  std::vector<uint8_t> out(deflateBound(&zs, data.size()) + 32);
  zs.next_in = const_cast<Bytef*>(data.data());
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const size_t produced = out.size() - zs.avail_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    return Error(Code::kInternal, fmt::format("gzip: deflate did not finish (zlib code {})", rc));
  }
  out.resize(produced);
  return out;
}

}  // namespace swrdma
