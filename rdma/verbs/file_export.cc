#include "rdma/verbs/file_export.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <system_error>
#include <vector>

namespace swrdma::rdma::verbs {

std::string_view ExportMappingName(ExportMapping mapping) {
  switch (mapping) {
    case ExportMapping::kReadOnlyShared:
      return "read-only MAP_SHARED";
    case ExportMapping::kWritableSharedNeverWritten:
      return "writable MAP_SHARED (never written)";
  }
  return "?";
}

namespace {

MapMode ModeOf(ExportMapping mapping) {
  return mapping == ExportMapping::kReadOnlyShared ? MapMode::kReadOnly : MapMode::kReadWrite;
}

Result<MemoryRegion> RegisterMapping(const ProtectionDomain& pd, const MappedFile& file,
                                     bool on_demand) {
  // ibv_reg_mr takes a non-const address; REMOTE_READ only, nothing ever writes through it.
  return MemoryRegion::Open(pd, const_cast<std::byte*>(file.data()),
                            static_cast<size_t>(file.size()),
                            on_demand ? Access::kRemoteReadOnDemand : Access::kRemoteReadOnly);
}

}  // namespace

Result<ExportMapping> ChooseExportMapping(const ProtectionDomain& pd,
                                          const std::filesystem::path& dir, bool on_demand) {
  std::filesystem::path probe = dir / (".swrdma-mr-probe-" + std::to_string(getpid()) + ".tmp");
  {
    std::ofstream out(probe, std::ios::binary | std::ios::trunc);
    std::vector<char> page(64 * 1024, 'p');
    out.write(page.data(), static_cast<std::streamsize>(page.size()));
    if (!out) {
      return Error(Code::kIOError, "cannot write the registration probe file " + probe.string());
    }
  }
  struct Remove {
    std::filesystem::path path;
    ~Remove() {
      std::error_code ignored;
      std::filesystem::remove(path, ignored);
    }
  } remove{probe};
  Status last;
  for (ExportMapping mapping :
       {ExportMapping::kReadOnlyShared, ExportMapping::kWritableSharedNeverWritten}) {
    SWRDMA_ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(probe, {.mode = ModeOf(mapping)}));
    auto region = RegisterMapping(pd, file, on_demand);
    if (region) return mapping;
    last = region.error();
    if (last.code() != Code::kUnsupported) break;  // not the kernel refusing this mapping
  }
  return Error(last.WithContext("registering a file mapping REMOTE_READ only (probe " +
                                probe.string() + ")"));
}

Result<ExportedFile> ExportedFile::Open(const ProtectionDomain& pd,
                                        const std::filesystem::path& path, ExportMapping mapping,
                                        uint64_t generation, bool on_demand) {
  SWRDMA_ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path, {.mode = ModeOf(mapping)}));
  if (file.size() == 0) {
    return Error(Code::kInvalidArgument, "cannot export empty file " + path.string());
  }
  auto region = RegisterMapping(pd, file, on_demand);
  if (!region) {
    return Error(region.error().WithContext("exporting " + path.string() + " (" +
                                            std::string(ExportMappingName(mapping)) + ")"));
  }
  return ExportedFile(std::move(file), std::move(*region), mapping, generation);
}

}  // namespace swrdma::rdma::verbs
