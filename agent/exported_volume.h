// One volume's `.dat` as the agent exports it: mapped, registered with UCX, its rkey packed.
//
// The whole file is one registration (one region). UCX registers large ranges fine on every
// transport here (tcp/shared memory do not pin); on InfiniBand a 32 GiB registration needs
// `ulimit -l unlimited` (LimitMEMLOCK=infinity in the unit) or ODP, which UCX uses when the NIC
// offers it. An ExportedVolume is immutable: a grown, truncated or vacuumed file is exported again
// under a new generation, and the old one lives until its last reader (shared_ptr) lets go.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/messages.h"
#include "protocol/status.h"
#include "rdma/mapped_file.h"
#include "rdma/pin_budget.h"
#include "rdma/registration.h"
#include "rdma/ucx/memory_region.h"
#include "rdma/ucx/ucx_context.h"
#include "volume/superblock.h"
#include "volume/volume_files.h"

namespace swrdma::agent {

// How the `.dat` bytes become registered memory.
enum class ExportMode : uint8_t {
  // Read-only shared file mapping, registered in place (default; zero copy; sees the volume
  // server's appends as they happen).
  kMap,
  // Writable shared mapping: for NICs/drivers that refuse to register read-only pages. Risk: a
  // peer holding the rkey could write into the volume file (UCX registers remote-writable on IB).
  kMapWritable,
  // Copy the file into UCX-allocated memory: works everywhere, costs RAM equal to the file and a
  // copy at every (re-)export; appends need a re-export to be seen.
  kCopy,
};

std::string_view ExportModeName(ExportMode mode);
Result<ExportMode> ParseExportMode(std::string_view name);

struct ExportOptions {
  ExportMode mode = ExportMode::kMap;
  // Address space mapped and registered past the end of the file (map modes), so appends are
  // served from the same export; the file is exported again only when it outgrows the reserve.
  // If the transport refuses to register past end of file (InfiniBand without ODP), the export
  // registers the file's size only and is renewed whenever the file grows.
  uint64_t growth_reserve = uint64_t{1} << 30;
  // A transport whose NIC enforces keys (verbs, agent/verbs_exporter.h): the mapping is also
  // registered there, REMOTE_READ only, in extents: [0, size at export), then each tail the
  // file grows by, registered before it is served. Null: checked reads only.
  const rdma::Registrar* remote = nullptr;
  // The limit on what remote registrations may pin (--max-pinned-bytes; null: none). A range the
  // budget (or the registrar) refuses stays unregistered and is still served: lookups answer
  // "checked" for records there, and verbs clients read them through the agent.
  rdma::PinBudget* pin_budget = nullptr;
  // More extents than this and the volume is exported again (one extent, a new generation)
  // instead: a client keeps one key per extent.
  size_t max_remote_extents = 32;
};

class ExportedVolume {
 public:
  // Maps and registers `files.dat`. `index_generation` names the index state the offsets served
  // with this export come from; `generation` is the export's own id.
  static Result<std::shared_ptr<const ExportedVolume>> Create(const rdma::UcxContext& context,
                                                              const VolumeFiles& files,
                                                              uint64_t index_generation,
                                                              uint64_t generation,
                                                              const ExportOptions& options);

  uint32_t volume_id() const { return files_.volume_id; }
  const VolumeFiles& files() const { return files_; }
  const SuperBlock& superblock() const { return superblock_; }
  NeedleVersion version() const { return superblock_.version; }
  uint64_t generation() const { return generation_; }
  uint64_t index_generation() const { return index_generation_; }
  ExportMode mode() const { return mode_; }
  // Bytes of the file that may be served: its size when last synced (grows with appends).
  uint64_t size() const { return valid_size_.load(std::memory_order_acquire); }
  // Bytes registered (file size at export plus the reserve that could be registered).
  uint64_t registered_length() const { return descriptor_.length; }
  // The served bytes as the agent's CPU sees them.
  std::span<const uint8_t> bytes() const {
    return {static_cast<const uint8_t*>(region_.address()), static_cast<size_t>(size())};
  }
  // The UCX registration of the mapping: sends from it (checked reads) name it so that UCX uses
  // this registration instead of registering the range again in its cache.
  ucp_mem_h memh() const { return region_.get(); }
  // Remote address of file offset 0.
  uint64_t base_address() const { return reinterpret_cast<uint64_t>(region_.address()); }
  const RegionDescriptor& region_descriptor() const { return descriptor_; }
  // Why the reserve is not registered (empty when it is, or none was asked for).
  const std::string& note() const { return note_; }
  // The remote (verbs) registrations covering [0, remote_covered()), in file order; empty
  // without a remote registrar or when the first registration was refused.
  std::vector<RegionDescriptor> remote_regions() const;
  bool remote() const { return remote_ != nullptr; }
  // The remote registration holding file bytes [offset, offset + length) whole, kept alive by
  // the pointer (push over verbs writes from it); null when none does.
  std::shared_ptr<const rdma::Registration> RemoteRegistrationFor(uint64_t offset,
                                                                  uint64_t length) const;
  // File bytes [0, remote_covered()) are under remote keys; a record past it is read checked.
  uint64_t remote_covered() const { return remote_covered_.load(std::memory_order_acquire); }
  // True when a record at [offset, offset + length) can be read one-sided (under a remote key).
  bool RemotelyReadable(uint64_t offset, uint64_t length) const {
    return remote_ != nullptr && offset + length <= remote_covered();
  }

  // True when this export can serve a file of `file_size` bytes in place.
  bool CanServe(uint64_t file_size) const;
  // Publishes `file_size` bytes (<= registered_length) after the index applied a tail; with a
  // remote registrar the new tail is registered there first. If that is refused (pin budget,
  // locked-memory limit) the bytes are served all the same, by checked reads only, and the
  // refusal is returned once (for the scan report) until a registration succeeds again.
  Status SetServedSize(uint64_t file_size) const;
  // Reads the agent answered for this export (lookups, checked reads): what the pin budget's
  // hot-first choice goes by. One-sided reads of a cached lookup never reach the agent.
  void NoteRead() const { reads_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t reads() const { return reads_.load(std::memory_order_relaxed); }
  // Gives up every remote registration and its pin reservation: the records are read checked
  // from then on (a peer's READ under an old key fails with a remote access error, and the
  // client looks the needle up again). How the pin budget makes room for a hotter volume; a
  // later SetServedSize registers the file again if the budget has room. Returns the bytes
  // that were registered.
  uint64_t DropRemote() const;
  // True (once) if a read of this export faulted (file truncated under it): export it again.
  bool TakeFaulted() const { return mapping_ && mapping_->TakeFaulted(); }

 private:
  ExportedVolume(VolumeFiles files, SuperBlock sb, uint64_t index_generation, uint64_t generation,
                 ExportMode mode, uint64_t size, std::optional<rdma::MappedFile> mapping,
                 rdma::MemoryRegion region, RegionDescriptor descriptor, std::string note);

  VolumeFiles files_;
  SuperBlock superblock_;
  uint64_t index_generation_;
  uint64_t generation_;
  ExportMode mode_;
  mutable std::atomic<uint64_t> valid_size_;
  // Released after region_ (declared first, destroyed last): unregister, then tombstone the pages.
  std::optional<rdma::MappedFile> mapping_;  // absent in copy mode
  rdma::MemoryRegion region_;
  RegionDescriptor descriptor_;
  std::string note_;
  // After mapping_ (destroyed first): deregistered before the pages go, so a retired
  // generation's rkeys fail with a remote access error, never read tombstoned zeros.
  struct RemoteExtent {
    rdma::PinBudget::Reservation pinned;  // given back after the registration goes
    // Shared only with a push in flight (RemoteRegistrationFor), which may hold it a few
    // milliseconds past DropRemote; the pin reservation is given back at the drop.
    std::shared_ptr<rdma::Registration> registration;
    RegionDescriptor descriptor;
  };
  const rdma::Registrar* remote_ = nullptr;
  rdma::PinBudget* pin_budget_ = nullptr;
  size_t max_remote_extents_ = 0;
  mutable std::mutex remote_mu_;
  mutable std::vector<RemoteExtent> remote_extents_;  // guarded by remote_mu_
  mutable std::atomic<uint64_t> remote_covered_{0};   // written under remote_mu_
  mutable bool remote_refused_ = false;               // guarded by remote_mu_: said once
  mutable std::atomic<uint64_t> reads_{0};

  Status RegisterRemoteUpTo(uint64_t file_size) const;  // remote_mu_ held
};

}  // namespace swrdma::agent
