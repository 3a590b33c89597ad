// Internals shared by needle_index.cc (open, lookups) and needle_index_sync.cc (keeping volumes
// in step with their files): the RocksDB handles, the key/value encodings, Status translation.
// Not part of the public API.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>

#include "index/needle_index.h"
#include "protocol/byte_order.h"
#include "protocol/status.h"

namespace swrdma {

struct NeedleIndex::Handles {
  rocksdb::Options options;  // of the needles column family: SstFileWriter must match it
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::ColumnFamilyHandle* meta = nullptr;     // default CF: database-wide settings
  rocksdb::ColumnFamilyHandle* needles = nullptr;  // volume states and needle entries
  std::filesystem::path ingest_dir;                // scratch SST files before ingestion

  ~Handles() {
    if (db) {
      if (needles) db->DestroyColumnFamilyHandle(needles).PermitUncheckedError();
      if (meta) db->DestroyColumnFamilyHandle(meta).PermitUncheckedError();
      db->Close().PermitUncheckedError();
    }
  }
};

namespace index_internal {

inline constexpr size_t kVolumeKeySize = 4;
inline constexpr size_t kNeedleKeySize = 12;
inline constexpr size_t kNeedleValueSize = 24;
inline constexpr uint8_t kStateFormat = 1;
// format, offset width, needle version, compaction revision, then nine u64 fields.
inline constexpr size_t kStateSize = 1 + 1 + 1 + 2 + 9 * 8;

// Database-wide keys in the default column family.
inline constexpr std::string_view kSchemaKey = "schema";
inline constexpr std::string_view kSchemaValue = "swrdma-needle-index/1";
inline constexpr std::string_view kLastGenerationKey = "last_generation";
inline constexpr std::string_view kNeedlesFamily = "needles";

using VolumeKey = std::array<char, kVolumeKeySize>;
using NeedleKeyBytes = std::array<char, kNeedleKeySize>;
using NeedleValueBytes = std::array<char, kNeedleValueSize>;

inline uint8_t* U8(char* p) {
  return reinterpret_cast<uint8_t*>(p);
}
inline const uint8_t* U8(const char* p) {
  return reinterpret_cast<const uint8_t*>(p);
}

inline VolumeKey EncodeVolumeKey(uint32_t vid) {
  VolumeKey k;
  StoreBe32(U8(k.data()), vid);
  return k;
}

inline NeedleKeyBytes EncodeNeedleKey(uint32_t vid, uint64_t needle_id) {
  NeedleKeyBytes k;
  StoreBe32(U8(k.data()), vid);
  StoreBe64(U8(k.data()) + 4, needle_id);
  return k;
}

// Exclusive end of volume `vid`'s key range. For the last volume id no 4-byte key follows, so
// 13 bytes of 0xFF (greater than every 12-byte key of that volume) close the range.
inline std::string VolumeRangeEnd(uint32_t vid) {
  if (vid == UINT32_MAX) return std::string(kNeedleKeySize + 1, '\xFF');
  VolumeKey k = EncodeVolumeKey(vid + 1);
  return std::string(k.data(), k.size());
}

inline rocksdb::Slice AsSlice(const auto& bytes) {
  return {bytes.data(), bytes.size()};
}

// A deletion is stored with size kTombstoneSize; its offset is the tombstone record's (or 0).
inline NeedleValueBytes EncodeNeedleValue(uint64_t offset, uint32_t size, uint32_t cookie,
                                          uint64_t generation) {
  NeedleValueBytes v;
  uint8_t* p = U8(v.data());
  StoreBe64(p, offset);
  StoreBe32(p + 8, size);
  StoreBe32(p + 12, cookie);
  StoreBe64(p + 16, generation);
  return v;
}

// kCorruption if the value has the wrong length.
inline Result<NeedleLookup> DecodeNeedleValue(rocksdb::Slice v) {
  if (v.size() != kNeedleValueSize) {
    return Error(Code::kCorruption, "needle value of " + std::to_string(v.size()) +
                                        " bytes, expected 24; delete the index to rebuild it");
  }
  const uint8_t* p = U8(v.data());
  NeedleLookup r;
  r.location.generation = LoadBe64(p + 16);
  uint32_t size = LoadBe32(p + 8);
  if (size == kTombstoneSize) {
    r.outcome = LookupOutcome::kDeleted;
    return r;
  }
  r.outcome = LookupOutcome::kFound;
  r.location.offset = LoadBe64(p);
  r.location.size = size;
  r.location.cookie = LoadBe32(p + 12);
  return r;
}

inline bool IsTombstoneValue(rocksdb::Slice v) {
  return v.size() == kNeedleValueSize && LoadBe32(U8(v.data()) + 8) == kTombstoneSize;
}

std::string EncodeVolumeState(const VolumeState& s);
Result<VolumeState> DecodeVolumeState(uint32_t vid, rocksdb::Slice v);

// RocksDB status -> project Status, prefixed with what was being done.
Status ToStatus(const rocksdb::Status& s, std::string_view context);

// A RocksDB snapshot held for one scope, with read options reading from it: every read in the
// scope sees the same state.
class ScopedSnapshot {
 public:
  explicit ScopedSnapshot(rocksdb::DB* db) : db_(db), snapshot_(db->GetSnapshot()) {
    read_options_.snapshot = snapshot_;
  }
  ~ScopedSnapshot() { db_->ReleaseSnapshot(snapshot_); }
  ScopedSnapshot(const ScopedSnapshot&) = delete;
  ScopedSnapshot& operator=(const ScopedSnapshot&) = delete;
  const rocksdb::ReadOptions& read_options() const { return read_options_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
  rocksdb::ReadOptions read_options_;
};

}  // namespace index_internal
}  // namespace swrdma
