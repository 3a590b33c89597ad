// NeedleView: a verified needle read without a copy. The whole record was fetched with
// ucp_get_nbx into a registered buffer of the client's pool and verified there (header id,
// cookie, size, CRC-32C); the view points into that buffer and holds it until destroyed.
//
// Lifetime: the caller decides how long the buffer stays out of the pool. A view must be
// destroyed before its Client (the pool's memory outlives the pool, but not the process's
// intentions: keep views short-lived). Views read over the HTTP fallback own their bytes.
//
// Data is as stored: gzip-compressed when stored_gzipped() (Client::Read/ReadMany decompress).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/crc32c.h"
#include "rdma/buffer_pool.h"

namespace swrdma::client {

struct NeedleData;

class NeedleView {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  NeedleView() = default;
  NeedleView(NeedleView&&) noexcept = default;
  NeedleView& operator=(NeedleView&&) noexcept = default;
  NeedleView(const NeedleView&) = delete;
  NeedleView& operator=(const NeedleView&) = delete;

  std::span<const uint8_t> data() const { return At(data_); }
  std::string_view name() const { return Text(name_); }
  std::string_view mime() const { return http_ ? std::string_view(http_mime_) : Text(mime_); }
  bool stored_gzipped() const { return stored_gzipped_; }
  // True only for HTTP-fallback views whose body the agent already decompressed.
  bool decompressed() const { return decompressed_; }
  CrcForm crc_form() const { return crc_form_; }
  std::string_view via() const { return http_ ? "http" : "rdma"; }
  // When the read's get was posted and when it was verified: its own latency, also inside a
  // window of many reads. Set by Client::ReadEach only (zero otherwise: clock reads cost).
  TimePoint issued() const { return issued_; }
  TimePoint verified() const { return verified_; }
  // The registered buffer holding the whole record (empty for HTTP views).
  const rdma::PooledBuffer& buffer() const { return buffer_; }

 private:
  friend class Client;
  struct Range {
    uint32_t offset = 0;
    uint32_t length = 0;
  };
  const uint8_t* Base() const {
    return buffer_ ? reinterpret_cast<const uint8_t*>(buffer_.data()) : http_body_.data();
  }
  std::span<const uint8_t> At(Range r) const { return {Base() + r.offset, r.length}; }
  std::string_view Text(Range r) const {
    auto s = At(r);
    return {reinterpret_cast<const char*>(s.data()), s.size()};
  }

  rdma::PooledBuffer buffer_;
  Range data_, name_, mime_;
  bool stored_gzipped_ = false;
  bool decompressed_ = false;
  bool http_ = false;
  CrcForm crc_form_ = CrcForm::kRaw;
  std::vector<uint8_t> http_body_;  // HTTP fallback only
  std::string http_mime_;           // HTTP fallback only
  TimePoint issued_{}, verified_{};
};

}  // namespace swrdma::client
