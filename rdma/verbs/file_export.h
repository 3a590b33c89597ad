// A volume file exported for RDMA READ: a shared mapping of the file registered with
// IBV_ACCESS_REMOTE_READ only.
//
// Which mapping a kernel pins for such a registration differs (issue 14, measured with rxe):
//   - kernel 6.12: O_RDONLY + PROT_READ + MAP_SHARED registers and follows the page cache;
//   - kernel 6.1:  the same mapping fails with EFAULT; a writable shared mapping (O_RDWR,
//     PROT_READ|PROT_WRITE, MAP_SHARED) registers and follows the page cache.
// MAP_PRIVATE registers everywhere but pins a private copy that later writes to the file never
// reach: stale bytes, so it is never used. The writable mapping is never written by this
// process, and the registration is REMOTE_READ only, so no peer can write through it either.
// The choice is made once at start (ChooseExportMapping) and logged by the caller.
//
// On a device with on-demand paging (ODP) for RC READ the registration is REMOTE_READ |
// ON_DEMAND: it pins nothing and the device faults the file's pages in as peers read them
// (kernel 6.16's rxe, mlx5). The probe then registers that way too.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

#include "protocol/status.h"
#include "rdma/mapped_file.h"
#include "rdma/registration.h"
#include "rdma/verbs/device.h"
#include "rdma/verbs/memory_region.h"

namespace swrdma::rdma::verbs {

enum class ExportMapping {
  kReadOnlyShared,              // O_RDONLY, PROT_READ, MAP_SHARED
  kWritableSharedNeverWritten,  // O_RDWR, PROT_READ|PROT_WRITE, MAP_SHARED; never written
};

// "read-only MAP_SHARED" / "writable MAP_SHARED (never written)".
std::string_view ExportMappingName(ExportMapping mapping);

// Which mapping this kernel pins for a REMOTE_READ-only registration: registers a small probe
// file created in `dir` (which should be on the volumes' file system) read-only first, and
// falls back to the writable mapping when the kernel refuses (EFAULT). The probe file is
// removed. An error when neither registers. `on_demand`: probe REMOTE_READ | ON_DEMAND
// registrations (what the exports will be).
Result<ExportMapping> ChooseExportMapping(const ProtectionDomain& pd,
                                          const std::filesystem::path& dir, bool on_demand = false);

class ExportedFile {
 public:
  // Maps the whole of `path` with `mapping` and registers it REMOTE_READ only in `pd` (with
  // ON_DEMAND when `on_demand`). kUnsupported when the kernel will not pin that mapping
  // (choose with ChooseExportMapping).
  static Result<ExportedFile> Open(const ProtectionDomain& pd, const std::filesystem::path& path,
                                   ExportMapping mapping, uint64_t generation,
                                   bool on_demand = false);

  ExportedFile(ExportedFile&&) noexcept = default;
  ExportedFile& operator=(ExportedFile&&) noexcept = default;
  // The registration goes first (members in reverse order), then the mapping: from then on
  // the old rkey fails with a remote access error, never stale bytes.
  ~ExportedFile() = default;

  const MappedFile& file() const { return file_; }
  const MemoryRegion& region() const { return region_; }
  ExportMapping mapping() const { return mapping_; }
  uint64_t generation() const { return generation_; }
  RemoteRegion Describe() const { return region_.Describe(generation_); }

 private:
  ExportedFile(MappedFile file, MemoryRegion region, ExportMapping mapping, uint64_t generation)
      : file_(std::move(file)),
        region_(std::move(region)),
        mapping_(mapping),
        generation_(generation) {}

  MappedFile file_;
  MemoryRegion region_;
  ExportMapping mapping_;
  uint64_t generation_;
};

}  // namespace swrdma::rdma::verbs
