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
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "protocol/crc32c.h"

namespace swrdma::client {

struct NeedleData;

// Owners BufferKeeper may move with memcpy: no pointer into themselves and none to them kept
// elsewhere, so the bytes moved are the object. Opt in by specializing to true next to the type's
// use (client_impl.h does for rdma::PooledBuffer). A view moves several times per read: a
// memcpy each time instead of a call keeps views as cheap as when they held the buffer itself.
template <typename T>
inline constexpr bool kRelocatableBufferOwner = false;

// Owner of the registered buffer a view points into (an rdma::PooledBuffer), type-erased so that
// this header and client.h need no rdma/ header. The owner lives inline, not on the heap: making
// a view allocates nothing; moving one copies 32 bytes; destroying one makes one indirect call.
class BufferKeeper {
 public:
  BufferKeeper() = default;
  // Takes a move-only owner with data() and size() (implicit, like std::function): the client
  // assigns its PooledBuffer. Empty owners give an empty keeper.
  template <typename Owner>
    requires(!std::is_same_v<std::remove_cvref_t<Owner>, BufferKeeper> &&
             !std::is_lvalue_reference_v<Owner>)
  BufferKeeper(Owner&& owner) noexcept {  // NOLINT(google-explicit-constructor)
    using T = std::remove_cvref_t<Owner>;
    static_assert(kRelocatableBufferOwner<T>, "declare the owner kRelocatableBufferOwner");
    static_assert(sizeof(T) <= kStorage && alignof(T) <= alignof(void*),
                  "the owner no longer fits BufferKeeper's inline storage: raise kStorage");
    static_assert(std::is_nothrow_move_constructible_v<T>);
    if (!owner) return;
    data_ = reinterpret_cast<const std::byte*>(owner.data());
    size_ = owner.size();
    ::new (static_cast<void*>(storage_)) T(std::move(owner));
    destroy_ = [](void* p) noexcept { static_cast<T*>(p)->~T(); };
  }
  BufferKeeper(BufferKeeper&& other) noexcept { Take(other); }
  BufferKeeper& operator=(BufferKeeper&& other) noexcept {
    if (this != &other) {
      Reset();
      Take(other);
    }
    return *this;
  }
  BufferKeeper(const BufferKeeper&) = delete;
  BufferKeeper& operator=(const BufferKeeper&) = delete;
  ~BufferKeeper() { Reset(); }

  explicit operator bool() const { return data_ != nullptr; }
  const std::byte* data() const { return data_; }
  // The buffer's capacity (at least the record's length).
  size_t size() const { return size_; }
  // Gives the buffer back to its pool now.
  void Reset() noexcept {
    if (destroy_ != nullptr) destroy_(storage_);
    destroy_ = nullptr;
    data_ = nullptr;
    size_ = 0;
  }

 private:
  static constexpr size_t kStorage = 4 * sizeof(void*);  // sizeof(rdma::PooledBuffer)

  // Relocation (kRelocatableBufferOwner): the owner's bytes move, the source forgets them.
  void Take(BufferKeeper& other) noexcept {
    if (other.destroy_ == nullptr) return;
    std::memcpy(storage_, other.storage_, kStorage);
    destroy_ = std::exchange(other.destroy_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }

  alignas(void*) std::byte storage_[kStorage];
  void (*destroy_)(void*) noexcept = nullptr;  // null: empty
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

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
  // Flag 0x80: the data is a chunk manifest (JSON list of the file's chunks), which the volume
  // server resolves into the file; Client::Read/ReadMany refuse it unless decompress is off (raw).
  bool is_chunk_manifest() const { return chunk_manifest_; }
  // True only for HTTP-fallback views whose body the agent already decompressed.
  bool decompressed() const { return decompressed_; }
  CrcForm crc_form() const { return crc_form_; }
  std::string_view via() const { return http_ ? "http" : local_ ? "local" : "rdma"; }
  // When the read's get was posted and when it was verified: its own latency, also inside a
  // window of many reads. Set by Client::ReadEach only (zero otherwise: clock reads cost).
  TimePoint issued() const { return issued_; }
  TimePoint verified() const { return verified_; }
  // The registered buffer holding the whole record (empty for HTTP views).
  const BufferKeeper& buffer() const { return buffer_; }

 private:
  friend class Client;  // and so Client::Impl, which fills views in
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

  BufferKeeper buffer_;
  Range data_, name_, mime_;
  bool stored_gzipped_ = false;
  bool chunk_manifest_ = false;
  bool decompressed_ = false;
  bool http_ = false;
  bool local_ = false;  // verified in place in a same-host mapping (client/local_round.cc)
  CrcForm crc_form_ = CrcForm::kRaw;
  uint32_t checksum_ = 0;  // the record's stored checksum, in crc_form_ (copies re-check it)
  std::vector<uint8_t> http_body_;  // HTTP fallback only
  std::string http_mime_;           // HTTP fallback only
  TimePoint issued_{}, verified_{};
};

}  // namespace swrdma::client
