// MappedFile: owner of a shared mmap of a whole file (or its first `length` bytes), munmapped on
// destruction. Read-only by default: the exporting side only ever reads what others write.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>

#include "protocol/status.h"

namespace swrdma::rdma {

enum class MapMode {
  kReadOnly,   // O_RDONLY, PROT_READ, MAP_SHARED: sees writes other processes make to the file
  kReadWrite,  // O_RDWR, PROT_READ|PROT_WRITE, MAP_SHARED: writes go to the file
};

enum class MapAdvice { kNormal, kRandom, kSequential, kWillNeed, kDontNeed };

struct MapOptions {
  MapMode mode = MapMode::kReadOnly;
  // Bytes to map from offset 0; unset maps the file's current size. Must not exceed the file
  // size: touching a page past end of file raises SIGBUS, and with software-emulated RMA the
  // process touching it would be the serving one.
  std::optional<uint64_t> length;
  MapAdvice advice = MapAdvice::kNormal;  // applied with madvise right after mapping
  bool populate = false;                  // MAP_POPULATE: fault every page in up front
  // Extra address space mapped past the mapped length, for a file that grows (appends become
  // visible in place, no re-mapping). Pages past end of file fault when touched, so this needs
  // `guard` (see fault_guard.h).
  uint64_t reserve = 0;
  // Registers the mapping with FaultGuard: a SIGBUS/SIGSEGV inside it (file truncated, address past
  // end of file) is patched with a zero page instead of killing the process; faulted() reports it.
  bool guard = false;
  // On release, replace the pages by a zero mapping (FaultGuard::Tombstone) instead of unmapping,
  // so late readers of the address range read zeros. The file itself is released either way.
  bool tombstone_on_release = false;
};

class MappedFile {
 public:
  // Maps `path`. A zero-length mapping (empty file, or length 0) succeeds with data() == nullptr
  // (mmap cannot map 0 bytes). kNotFound if the file does not exist, kPermissionDenied if it
  // cannot be opened, kInvalidArgument if length exceeds the file, kIOError otherwise.
  static Result<MappedFile> Open(const std::filesystem::path& path, const MapOptions& options = {});

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::filesystem::path& path() const { return path_; }
  MapMode mode() const { return mode_; }
  const std::byte* data() const { return data_; }
  // nullptr for a read-only mapping.
  std::byte* mutable_data() const { return mode_ == MapMode::kReadWrite ? data_ : nullptr; }
  // Bytes of the file mapped (its size at Open, or options.length).
  uint64_t size() const { return size_; }
  // Address space mapped: size() plus the reserve.
  uint64_t mapped_length() const { return mapped_length_; }
  // True (once) if a fault in this mapping was patched since the last call (needs `guard`).
  bool TakeFaulted() const;
  std::span<const std::byte> bytes() const { return {data_, static_cast<size_t>(size_)}; }

  // madvise over [offset, offset + length) (to the end when length is unset). The range is
  // widened to whole pages.
  Status Advise(MapAdvice advice, uint64_t offset = 0, std::optional<uint64_t> length = {}) const;

 private:
  MappedFile(std::filesystem::path path, MapMode mode, std::byte* data, uint64_t size)
      : path_(std::move(path)), mode_(mode), data_(data), size_(size), mapped_length_(size) {}
  void Unmap();

  std::filesystem::path path_;
  MapMode mode_ = MapMode::kReadOnly;
  std::byte* data_ = nullptr;
  uint64_t size_ = 0;
  uint64_t mapped_length_ = 0;
  int guard_slot_ = -1;
  bool tombstone_ = false;
};

}  // namespace swrdma::rdma
