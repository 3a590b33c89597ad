#include "agent/exported_volume.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "protocol/byte_size.h"

namespace swrdma::agent {

std::string_view ExportModeName(ExportMode mode) {
  switch (mode) {
    case ExportMode::kMap:
      return "map";
    case ExportMode::kMapWritable:
      return "map-writable";
    case ExportMode::kCopy:
      return "copy";
  }
  return "unknown";
}

Result<ExportMode> ParseExportMode(std::string_view name) {
  for (auto m : {ExportMode::kMap, ExportMode::kMapWritable, ExportMode::kCopy}) {
    if (ExportModeName(m) == name) return m;
  }
  return Error(Code::kInvalidArgument,
               fmt::format("unknown export mode '{}': use map, map-writable or copy", name));
}

ExportedVolume::ExportedVolume(VolumeFiles files, SuperBlock sb, uint64_t index_generation,
                               uint64_t generation, ExportMode mode, uint64_t size,
                               std::optional<rdma::MappedFile> mapping, rdma::MemoryRegion region,
                               RegionDescriptor descriptor, std::string note)
    : files_(std::move(files)),
      superblock_(std::move(sb)),
      index_generation_(index_generation),
      generation_(generation),
      mode_(mode),
      valid_size_(size),
      mapping_(std::move(mapping)),
      region_(std::move(region)),
      descriptor_(std::move(descriptor)),
      note_(std::move(note)) {}

bool ExportedVolume::CanServe(uint64_t file_size) const {
  if (mode_ == ExportMode::kCopy) return file_size == size();
  if (file_size > descriptor_.length) return false;
  if (remote_ != nullptr) {
    std::lock_guard lock(remote_mu_);
    if (file_size > remote_covered() && remote_extents_.size() >= max_remote_extents_) return false;
  }
  return true;
}

Status ExportedVolume::RegisterRemoteUpTo(uint64_t file_size) const {
  const uint64_t covered = remote_covered();
  if (file_size <= covered) return Status::Ok();
  if (remote_extents_.size() >= max_remote_extents_) {
    return Status(Code::kResourceExhausted,
                  fmt::format("volume {}: {} remote extents registered; export it again",
                              volume_id(), remote_extents_.size()));
  }
  rdma::PinBudget::Reservation pinned;
  // On-demand paging pins nothing: the budget does not apply (the NIC faults pages in).
  if (pin_budget_ != nullptr && remote_->PinsMemory()) {
    auto reserved = pin_budget_->TryReserve(file_size - covered);
    if (!reserved) {
      return Status(
          Code::kResourceExhausted,
          fmt::format("volume {}: bytes [{}, {}) stay unregistered for RDMA READ: {} more would "
                      "pass --max-pinned-bytes ({} of {} pinned); verbs clients read them "
                      "through the agent (checked reads)",
                      volume_id(), covered, file_size, HumanBytes(file_size - covered),
                      HumanBytes(pin_budget_->used()), rdma::PinLimitText(pin_budget_->limit())));
    }
    pinned = std::move(*reserved);
  }
  // ibv_reg_mr takes a non-const address: the registration is REMOTE_READ only (the verbs
  // registrar refuses anything else for an export), nothing writes through it.
  auto* at = const_cast<uint8_t*>(static_cast<const uint8_t*>(region_.address())) + covered;
  auto reg = remote_->Register(at, file_size - covered, rdma::RegionAccess::kRemoteRead);
  if (!reg) {
    return reg.error().WithContext(
        fmt::format("volume {}: registering bytes [{}, {}) for RDMA "
                    "READ",
                    volume_id(), covered, file_size));
  }
  auto key = (*reg)->PackKey();
  if (!key) return key.error().WithContext("packing the remote key");
  RegionDescriptor d{covered, reinterpret_cast<uint64_t>(at), file_size - covered, std::move(*key)};
  remote_extents_.push_back(RemoteExtent{std::move(pinned), std::move(*reg), std::move(d)});
  remote_covered_.store(file_size, std::memory_order_release);
  return Status::Ok();
}

Status ExportedVolume::SetServedSize(uint64_t file_size) const {
  file_size = std::min(file_size, descriptor_.length);
  Status said = Status::Ok();
  if (remote_ != nullptr && file_size > remote_covered()) {
    std::lock_guard lock(remote_mu_);
    // Registered before it is published, so a lookup answers records in it as one-sided reads
    // at once; what is refused is published too and answered "checked" (VolumeSet::Finish).
    Status s = RegisterRemoteUpTo(file_size);
    if (s.ok()) {
      remote_refused_ = false;
    } else if (!remote_refused_) {
      remote_refused_ = true;
      said = std::move(s);  // once: every later scan would refuse the same
    }
  }
  valid_size_.store(file_size, std::memory_order_release);
  return said;
}

uint64_t ExportedVolume::DropRemote() const {
  if (remote_ == nullptr) return 0;
  std::vector<RemoteExtent> gone;  // deregistered (and unreserved) after the lock is let go
  uint64_t covered = 0;
  {
    std::lock_guard lock(remote_mu_);
    covered = remote_covered();
    // First: lookups from now on answer "checked", before any key stops working.
    remote_covered_.store(0, std::memory_order_release);
    gone.swap(remote_extents_);
    remote_refused_ = true;  // the refusals that follow were chosen, they are not news
  }
  return covered;
}

std::shared_ptr<const rdma::Registration> ExportedVolume::RemoteRegistrationFor(
    uint64_t offset, uint64_t length) const {
  if (remote_ == nullptr || offset + length > remote_covered()) return nullptr;
  std::lock_guard lock(remote_mu_);
  for (const auto& e : remote_extents_) {
    const RegionDescriptor& d = e.descriptor;
    if (offset >= d.file_offset && offset + length <= d.file_offset + d.length) {
      return e.registration;
    }
  }
  return nullptr;
}

std::vector<RegionDescriptor> ExportedVolume::remote_regions() const {
  std::vector<RegionDescriptor> out;
  if (remote_ == nullptr) return out;
  std::lock_guard lock(remote_mu_);
  out.reserve(remote_extents_.size());
  for (const auto& e : remote_extents_)
    out.push_back(e.descriptor);
  return out;
}

namespace {

// Reads the whole file into `dst` with pread (copy mode).
Status ReadWhole(const std::filesystem::path& path, uint8_t* dst, uint64_t size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status(Code::kIOError, fmt::format("open {}: {}", path.string(), std::strerror(errno)));
  }
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, dst + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = n < 0 ? std::strerror(errno) : "file shrank while copying";
      ::close(fd);
      return Status(Code::kIOError, fmt::format("read {}: {}", path.string(), why));
    }
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<const ExportedVolume>> ExportedVolume::Create(
    const rdma::UcxContext& context, const VolumeFiles& files, uint64_t index_generation,
    uint64_t generation, const ExportOptions& options) {
  const ExportMode mode = options.mode;
  std::string note;
  const std::string what =
      fmt::format("exporting volume {} ({})", files.volume_id, files.dat.string());
  std::optional<rdma::MappedFile> mapping;
  std::optional<rdma::MemoryRegion> region;
  uint64_t size = 0;
  if (mode == ExportMode::kCopy) {
    std::error_code ec;
    size = std::filesystem::file_size(files.dat, ec);
    if (ec) return Error(Code::kIOError, fmt::format("{}: stat: {}", what, ec.message()));
    auto r = rdma::MemoryRegion::Allocate(context, std::max<uint64_t>(size, 1),
                                          rdma::RegionAccess::kRemoteRead);
    if (!r) return Error(r.error().WithContext(what + ": allocating registered memory"));
    SWRDMA_RETURN_IF_ERROR(
        ReadWhole(files.dat, static_cast<uint8_t*>(r->address()), size).WithContext(what));
    region.emplace(std::move(*r));
  } else {
    rdma::MapOptions mo;
    mo.mode =
        mode == ExportMode::kMapWritable ? rdma::MapMode::kReadWrite : rdma::MapMode::kReadOnly;
    mo.advice = rdma::MapAdvice::kRandom;
    mo.guard = true;
    mo.tombstone_on_release = true;
    mo.reserve = options.growth_reserve;
    auto m = rdma::MappedFile::Open(files.dat, mo);
    if (!m) return Error(m.error().WithContext(what));
    size = m->size();
    if (size < kSuperBlockSize) {
      return Error(Code::kCorruption,
                   fmt::format("{}: file is {} bytes, shorter than a superblock", what, size));
    }
    auto r = rdma::MemoryRegion::Map(context, const_cast<std::byte*>(m->data()), m->mapped_length(),
                                     rdma::RegionAccess::kRemoteRead);
    if (!r && m->mapped_length() > size) {
      note = fmt::format(
          "registering {} bytes past end of file failed ({}); registered the file "
          "only, appends are served after a re-export",
          m->mapped_length() - size, r.error().message());
      r = rdma::MemoryRegion::Map(context, const_cast<std::byte*>(m->data()), size,
                                  rdma::RegionAccess::kRemoteRead);
    }
    if (!r) {
      return Error(r.error().WithContext(fmt::format(
          "{}: registering the {} mapping failed; if the NIC refuses read-only file pages try "
          "--export-mode map-writable or --export-mode copy (see docs)",
          what, mode == ExportMode::kMap ? "read-only" : "writable")));
    }
    mapping.emplace(std::move(*m));
    region.emplace(std::move(*r));
  }
  const auto* base = static_cast<const uint8_t*>(region->address());
  auto sb = ParseSuperBlock(std::span<const uint8_t>(base, size));
  if (!sb) return Error(sb.error().WithContext(what));

  auto rkey = region->PackRkey();
  if (!rkey) return Error(rkey.error().WithContext(what + ": packing the rkey"));
  RegionDescriptor desc{0, reinterpret_cast<uint64_t>(region->address()), region->length(),
                        std::move(*rkey)};
  std::shared_ptr<ExportedVolume> exported(
      new ExportedVolume(files, std::move(*sb), index_generation, generation, mode, size,
                         std::move(mapping), std::move(*region), std::move(desc), std::move(note)));
  if (options.remote != nullptr && mode != ExportMode::kCopy) {
    exported->remote_ = options.remote;
    exported->pin_budget_ = options.pin_budget;
    exported->max_remote_extents_ = std::max<size_t>(1, options.max_remote_extents);
    std::lock_guard lock(exported->remote_mu_);
    if (Status s = exported->RegisterRemoteUpTo(size); !s.ok()) {
      // Exported all the same: every record is then read checked until a scan registers it.
      exported->remote_refused_ = true;
      exported->note_ += (exported->note_.empty() ? "" : "; ") + s.message();
    }
  }
  return std::shared_ptr<const ExportedVolume>(std::move(exported));
}

}  // namespace swrdma::agent
