// Opening the needle index and answering lookups. Keeping volumes in step with their files is in
// needle_index_sync.cc.
#include "index/needle_index.h"

#include <algorithm>
#include <chrono>
#include <system_error>

#include <fmt/format.h>
#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "index/lookup_cache.h"
#include "index/needle_index_internal.h"

namespace swrdma {

using namespace index_internal;

std::string_view LookupOutcomeName(LookupOutcome o) {
  switch (o) {
    case LookupOutcome::kFound:
      return "found";
    case LookupOutcome::kDeleted:
      return "deleted";
    case LookupOutcome::kUnknownVolume:
      return "unknown_volume";
    case LookupOutcome::kUnknownNeedle:
      return "unknown_needle";
  }
  return "invalid";
}

std::string_view SyncActionName(SyncAction a) {
  switch (a) {
    case SyncAction::kUpToDate:
      return "up_to_date";
    case SyncAction::kAppliedTail:
      return "applied_tail";
    case SyncAction::kRebuilt:
      return "rebuilt";
  }
  return "invalid";
}

namespace index_internal {

Status ToStatus(const rocksdb::Status& s, std::string_view context) {
  if (s.ok()) return Status::Ok();
  Code code = Code::kInternal;
  if (s.IsNotFound()) {
    code = Code::kNotFound;
  } else if (s.IsCorruption()) {
    code = Code::kCorruption;
  } else if (s.IsIOError() || s.IsNoSpace() || s.IsPathNotFound()) {
    code = Code::kIOError;
  } else if (s.IsInvalidArgument()) {
    code = Code::kInvalidArgument;
  } else if (s.IsNotSupported()) {
    code = Code::kUnsupported;
  } else if (s.IsTimedOut()) {
    code = Code::kTimeout;
  } else if (s.IsBusy() || s.IsTryAgain() || s.IsShutdownInProgress() || s.IsIncomplete()) {
    code = Code::kUnavailable;
  } else if (s.IsMemoryLimit()) {
    code = Code::kResourceExhausted;
  }
  return Status(code, fmt::format("{}: rocksdb: {}", context, s.ToString()));
}

std::string EncodeVolumeState(const VolumeState& s) {
  std::string out(kStateSize, '\0');
  uint8_t* p = U8(out.data());
  p[0] = kStateFormat;
  p[1] = static_cast<uint8_t>(s.offset_width);
  p[2] = static_cast<uint8_t>(s.needle_version);
  StoreBe16(p + 3, s.compaction_revision);
  p += 5;
  for (uint64_t v : {s.generation, s.dat_device, s.dat_inode, s.dat_size, s.published_end,
                     s.idx_inode, s.idx_applied, s.live, s.deleted}) {
    StoreBe64(p, v);
    p += 8;
  }
  return out;
}

Result<VolumeState> DecodeVolumeState(uint32_t vid, rocksdb::Slice v) {
  const uint8_t* p = U8(v.data());
  if (v.size() != kStateSize || p[0] != kStateFormat || (p[1] != 4 && p[1] != 5)) {
    return Error(Code::kCorruption,
                 fmt::format("volume {}: stored index state is damaged ({} bytes, format {}); "
                             "drop the volume or delete the index to rebuild it",
                             vid, v.size(), v.empty() ? 0 : p[0]));
  }
  VolumeState s;
  s.volume_id = vid;
  s.offset_width = static_cast<OffsetWidth>(p[1]);
  SWRDMA_ASSIGN_OR_RETURN(s.needle_version, ToNeedleVersion(p[2]));
  s.compaction_revision = LoadBe16(p + 3);
  p += 5;
  for (uint64_t* f : {&s.generation, &s.dat_device, &s.dat_inode, &s.dat_size, &s.published_end,
                      &s.idx_inode, &s.idx_applied, &s.live, &s.deleted}) {
    *f = LoadBe64(p);
    p += 8;
  }
  return s;
}

}  // namespace index_internal

namespace {

// Point lookups dominate: whole-key bloom filters (misses for unknown needles and volumes skip
// the data blocks), hash-indexed data blocks, a shared block cache, every file kept open.
rocksdb::ColumnFamilyOptions NeedleFamilyOptions(const NeedleIndexOptions& o,
                                                 std::shared_ptr<rocksdb::Cache> cache) {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = std::move(cache);
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.whole_key_filtering = true;
  t.data_block_index_type = rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
  t.data_block_hash_table_util_ratio = 0.75;
  t.block_size = 4 * 1024;
  t.format_version = 5;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  cf.memtable_whole_key_filtering = true;
  cf.memtable_prefix_bloom_size_ratio = 0.02;
  cf.level_compaction_dynamic_level_bytes = true;
  cf.write_buffer_size = 64 << 20;
  // Values are 24 bytes with a repeated generation: LZ4 shrinks the files 2.4x (17 instead of
  // 40 bytes per needle) for ~10 % more load time and a decompression on block cache misses.
  const auto compression = o.compress ? rocksdb::kLZ4Compression : rocksdb::kNoCompression;
  cf.compression = compression;
  cf.bottommost_compression = compression;
  return cf;
}

}  // namespace

NeedleIndex::NeedleIndex(std::filesystem::path path, NeedleIndexOptions options,
                         std::unique_ptr<Handles> handles)
    : path_(std::move(path)),
      options_(options),
      h_(std::move(handles)),
      cache_(std::make_unique<LookupCache>(options.lookup_cache_entries)) {}

NeedleIndex::~NeedleIndex() = default;

Result<std::unique_ptr<NeedleIndex>> NeedleIndex::Open(const std::filesystem::path& path,
                                                       const NeedleIndexOptions& options) {
  const std::string ctx = fmt::format("opening needle index {}", path.string());
  std::error_code ec;
  if (options.create_if_missing) std::filesystem::create_directories(path, ec);
  if (ec) {
    return Error(Code::kIOError, fmt::format("{}: creating the directory: {}", ctx, ec.message()));
  }

  auto h = std::make_unique<Handles>();
  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.max_open_files = -1;
  db_options.keep_log_file_num = 5;
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1 << 20;
  rocksdb::ColumnFamilyOptions needles_cf = NeedleFamilyOptions(options, cache);
  h->options = rocksdb::Options(db_options, needles_cf);

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {std::string(kNeedlesFamily), needles_cf}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path.string(), families, &handles, &raw);
  if (!s.ok()) {
    const Status st = ToStatus(s, ctx);
    return Error(st.code(), st.message() +
                                "; is another process using this index, and is the directory "
                                "writable?");
  }
  h->db.reset(raw);
  h->meta = handles[0];
  h->needles = handles[1];

  // Refuse a database written with another layout rather than misread it.
  std::string schema;
  s = h->db->Get(rocksdb::ReadOptions(), h->meta, kSchemaKey, &schema);
  if (s.IsNotFound()) {
    s = h->db->Put(rocksdb::WriteOptions(), h->meta, kSchemaKey, kSchemaValue);
    if (!s.ok()) return Error(ToStatus(s, ctx + ": writing the schema marker"));
  } else if (!s.ok()) {
    return Error(ToStatus(s, ctx + ": reading the schema marker"));
  } else if (schema != kSchemaValue) {
    return Error(Code::kUnsupported,
                 fmt::format("{}: it holds layout '{}', this build reads '{}'; delete the "
                             "directory and the agent rebuilds the index from the .idx files",
                             ctx, schema, kSchemaValue));
  }

  // Scratch space for SST files; left-overs are from a crash mid-rebuild.
  h->ingest_dir = path / "swrdma-ingest";
  std::filesystem::remove_all(h->ingest_dir, ec);
  std::filesystem::create_directories(h->ingest_dir, ec);
  if (ec) {
    return Error(Code::kIOError,
                 fmt::format("{}: creating {}: {}", ctx, h->ingest_dir.string(), ec.message()));
  }
  return std::unique_ptr<NeedleIndex>(new NeedleIndex(path, options, std::move(h)));
}

Result<uint64_t> NeedleIndex::NextGeneration() {
  // Generations must never repeat for a volume id, even after the volume was dropped or the
  // index deleted: clients cache (vid, generation). So: max(last + 1, now in microseconds).
  std::string last_bytes;
  rocksdb::Status s =
      h_->db->Get(rocksdb::ReadOptions(), h_->meta, kLastGenerationKey, &last_bytes);
  uint64_t last = 0;
  if (s.ok() && last_bytes.size() == 8) {
    last = LoadBe64(U8(last_bytes.data()));
  } else if (!s.ok() && !s.IsNotFound()) {
    return Error(ToStatus(s, "reading the last index generation"));
  }
  const uint64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  const uint64_t next = std::max(last + 1, now_us);
  std::array<char, 8> bytes;
  StoreBe64(U8(bytes.data()), next);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = h_->db->Put(wo, h_->meta, kLastGenerationKey, AsSlice(bytes));
  if (!s.ok()) return Error(ToStatus(s, "writing the last index generation"));
  return next;
}

Status NeedleIndex::DropVolume(uint32_t volume_id) {
  std::lock_guard lock(write_mu_);
  rocksdb::WriteBatch batch;
  const VolumeKey begin = EncodeVolumeKey(volume_id);
  rocksdb::Status s = batch.DeleteRange(h_->needles, AsSlice(begin), VolumeRangeEnd(volume_id));
  if (s.ok()) s = h_->db->Write(rocksdb::WriteOptions(), &batch);
  cache_->InvalidateAll();
  return ToStatus(s, fmt::format("dropping volume {} from the needle index", volume_id));
}

LookupCacheStats NeedleIndex::lookup_cache_stats() const {
  return cache_->stats();
}

Result<VolumeState> NeedleIndex::GetVolume(uint32_t volume_id) const {
  rocksdb::PinnableSlice v;
  const VolumeKey key = EncodeVolumeKey(volume_id);
  rocksdb::Status s = h_->db->Get(rocksdb::ReadOptions(), h_->needles, AsSlice(key), &v);
  if (s.IsNotFound()) {
    return Error(Code::kUnknownVolume, fmt::format("volume {} is not indexed", volume_id));
  }
  if (!s.ok()) return Error(ToStatus(s, fmt::format("reading volume {} state", volume_id)));
  return DecodeVolumeState(volume_id, v);
}

Result<std::vector<VolumeState>> NeedleIndex::ListVolumes() const {
  std::vector<VolumeState> out;
  std::unique_ptr<rocksdb::Iterator> it(h_->db->NewIterator(rocksdb::ReadOptions(), h_->needles));
  // Hop from volume key to volume key; a volume's needles are skipped by seeking past them.
  for (it->SeekToFirst(); it->Valid();) {
    const rocksdb::Slice key = it->key();
    if (key.size() < kVolumeKeySize) break;  // not ours; nothing sorts there
    const uint32_t vid = LoadBe32(U8(key.data()));
    if (key.size() == kVolumeKeySize) {
      SWRDMA_ASSIGN_OR_RETURN(VolumeState st, DecodeVolumeState(vid, it->value()));
      out.push_back(st);
    }
    if (vid == UINT32_MAX) break;
    it->Seek(AsSlice(EncodeVolumeKey(vid + 1)));
  }
  if (!it->status().ok()) return Error(ToStatus(it->status(), "listing indexed volumes"));
  return out;
}

Result<NeedleLookup> NeedleIndex::Lookup(uint32_t volume_id, uint64_t needle_id) const {
  LookupCache::Ticket ticket;
  if (auto hit = cache_->Find(volume_id, needle_id, ticket)) return *hit;
  const NeedleKeyBytes key = EncodeNeedleKey(volume_id, needle_id);
  rocksdb::PinnableSlice v;
  rocksdb::Status s = h_->db->Get(rocksdb::ReadOptions(), h_->needles, AsSlice(key), &v);
  if (s.ok()) {
    auto answer = DecodeNeedleValue(v);
    if (answer) cache_->Fill(volume_id, needle_id, *answer, ticket);
    return answer;
  }
  if (!s.IsNotFound()) {
    return Error(
        ToStatus(s, fmt::format("looking up needle {:x} in volume {}", needle_id, volume_id)));
  }
  // A miss: the rare path pays a second read to tell an unknown needle from an unknown volume.
  v.Reset();
  const VolumeKey vkey = EncodeVolumeKey(volume_id);
  s = h_->db->Get(rocksdb::ReadOptions(), h_->needles, AsSlice(vkey), &v);
  if (s.IsNotFound()) return NeedleLookup{LookupOutcome::kUnknownVolume, {}};
  if (!s.ok()) return Error(ToStatus(s, fmt::format("looking up volume {}", volume_id)));
  return NeedleLookup{LookupOutcome::kUnknownNeedle, {}};
}

Result<std::vector<NeedleLookup>> NeedleIndex::LookupMany(std::span<const NeedleKey> keys) const {
  std::vector<NeedleLookup> out(keys.size());
  if (keys.empty()) return out;
  // One snapshot so every answer (and the volume check for misses) sees the same state.
  const index_internal::ScopedSnapshot snapshot(h_->db.get());
  const rocksdb::ReadOptions& ro = snapshot.read_options();

  std::vector<NeedleKeyBytes> key_bytes(keys.size());
  std::vector<rocksdb::Slice> slices(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    key_bytes[i] = EncodeNeedleKey(keys[i].volume_id, keys[i].needle_id);
    slices[i] = AsSlice(key_bytes[i]);
  }
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  h_->db->MultiGet(ro, h_->needles, keys.size(), slices.data(), values.data(), statuses.data());

  std::vector<std::pair<uint32_t, bool>> volumes_known;  // few distinct volumes per batch
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].ok()) {
      SWRDMA_ASSIGN_OR_RETURN(out[i], DecodeNeedleValue(values[i]));
      continue;
    }
    if (!statuses[i].IsNotFound()) {
      return Error(ToStatus(statuses[i], fmt::format("looking up needle {:x} in volume {}",
                                                     keys[i].needle_id, keys[i].volume_id)));
    }
    const uint32_t vid = keys[i].volume_id;
    auto known = std::ranges::find(volumes_known, vid, &std::pair<uint32_t, bool>::first);
    if (known == volumes_known.end()) {
      rocksdb::PinnableSlice v;
      rocksdb::Status s = h_->db->Get(ro, h_->needles, AsSlice(EncodeVolumeKey(vid)), &v);
      if (!s.ok() && !s.IsNotFound()) {
        return Error(ToStatus(s, fmt::format("looking up volume {}", vid)));
      }
      known = volumes_known.insert(volumes_known.end(), {vid, s.ok()});
    }
    out[i].outcome = known->second ? LookupOutcome::kUnknownNeedle : LookupOutcome::kUnknownVolume;
  }
  return out;
}

}  // namespace swrdma
