#include "rdma/mapped_file.h"

#include "rdma/fault_guard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>
#include <utility>

namespace swrdma::rdma {
namespace {

Status ErrnoStatus(int err, const std::filesystem::path& path, std::string_view what) {
  Code code = Code::kIOError;
  if (err == ENOENT || err == ENOTDIR) code = Code::kNotFound;
  if (err == EACCES || err == EPERM || err == EROFS) code = Code::kPermissionDenied;
  if (err == ENOMEM) code = Code::kResourceExhausted;
  return Status(code, fmt::format("mapping {}: {}: {}", path.string(), what, std::strerror(err)));
}

int AdviceFlag(MapAdvice advice) {
  switch (advice) {
    case MapAdvice::kNormal:
      return MADV_NORMAL;
    case MapAdvice::kRandom:
      return MADV_RANDOM;
    case MapAdvice::kSequential:
      return MADV_SEQUENTIAL;
    case MapAdvice::kWillNeed:
      return MADV_WILLNEED;
    case MapAdvice::kDontNeed:
      return MADV_DONTNEED;
  }
  return MADV_NORMAL;
}

// Closes the descriptor when mapping is done: a mapping does not need its fd.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Result<MappedFile> MappedFile::Open(const std::filesystem::path& path, const MapOptions& options) {
  const bool writable = options.mode == MapMode::kReadWrite;
  Fd file{::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC)};
  if (file.fd < 0) return Error(ErrnoStatus(errno, path, "open"));
  struct stat st{};
  if (::fstat(file.fd, &st) != 0) return Error(ErrnoStatus(errno, path, "fstat"));
  if (!S_ISREG(st.st_mode)) {
    return Error(Code::kInvalidArgument,
                 fmt::format("mapping {}: not a regular file", path.string()));
  }
  const auto file_size = static_cast<uint64_t>(st.st_size);
  const uint64_t length = options.length.value_or(file_size);
  if (length > file_size) {
    return Error(Code::kInvalidArgument,
                 fmt::format("mapping {}: asked for {} bytes but the file has {} (pages past end "
                             "of file fault with SIGBUS)",
                             path.string(), length, file_size));
  }
  if (length == 0) return MappedFile(path, options.mode, nullptr, 0);

  if (options.reserve > 0 && !options.guard) {
    return Error(
        Code::kInvalidArgument,
        fmt::format("mapping {}: a reserve past end of file needs the fault guard", path.string()));
  }
  if (options.guard) SWRDMA_RETURN_IF_ERROR(FaultGuard::Install());
  const uint64_t mapped_length = length + options.reserve;
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  int flags = MAP_SHARED | (options.populate ? MAP_POPULATE : 0);
  void* data = ::mmap(nullptr, mapped_length, prot, flags, file.fd, 0);
  if (data == MAP_FAILED) return Error(ErrnoStatus(errno, path, "mmap"));
  MappedFile mapped(path, options.mode, static_cast<std::byte*>(data), length);
  mapped.mapped_length_ = mapped_length;
  mapped.tombstone_ = options.tombstone_on_release;
  if (options.guard) {
    mapped.guard_slot_ = FaultGuard::Guard(data, mapped_length);
    if (mapped.guard_slot_ < 0) {
      return Error(Code::kResourceExhausted,
                   fmt::format("mapping {}: every fault-guard slot is taken", path.string()));
    }
  }
  if (options.advice != MapAdvice::kNormal) {
    SWRDMA_RETURN_IF_ERROR(mapped.Advise(options.advice));
  }
  return mapped;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      mode_(other.mode_),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_length_(std::exchange(other.mapped_length_, 0)),
      guard_slot_(std::exchange(other.guard_slot_, -1)),
      tombstone_(other.tombstone_) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    Unmap();
    path_ = std::move(other.path_);
    mode_ = other.mode_;
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_length_ = std::exchange(other.mapped_length_, 0);
    guard_slot_ = std::exchange(other.guard_slot_, -1);
    tombstone_ = other.tombstone_;
  }
  return *this;
}

MappedFile::~MappedFile() {
  Unmap();
}

void MappedFile::Unmap() {
  if (data_ != nullptr) {
    // A tombstone keeps the range reserved (zeros) and stays guarded by nothing: reading it can no
    // longer fault. Failing that, the range is unmapped.
    if (!tombstone_ || !FaultGuard::Tombstone(data_, mapped_length_).ok()) {
      ::munmap(data_, mapped_length_);
    }
  }
  FaultGuard::Unguard(guard_slot_);
  guard_slot_ = -1;
  data_ = nullptr;
  size_ = 0;
  mapped_length_ = 0;
}

bool MappedFile::TakeFaulted() const {
  return FaultGuard::TakeFaulted(guard_slot_);
}

Status MappedFile::Advise(MapAdvice advice, uint64_t offset, std::optional<uint64_t> length) const {
  if (data_ == nullptr) return Status::Ok();
  if (offset > size_) {
    return Status(Code::kInvalidArgument,
                  fmt::format("madvise on {}: offset {} is past the mapping ({} bytes)",
                              path_.string(), offset, size_));
  }
  uint64_t end = (length && *length < size_ - offset) ? offset + *length : size_;
  const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t start = offset / page * page;  // the mapping itself starts on a page boundary
  if (end <= start) return Status::Ok();
  if (::madvise(data_ + start, end - start, AdviceFlag(advice)) != 0) {
    return ErrnoStatus(errno, path_, "madvise");
  }
  return Status::Ok();
}

}  // namespace swrdma::rdma
