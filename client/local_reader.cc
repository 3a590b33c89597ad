#include "client/local_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "rdma/fault_guard.h"

namespace swrdma::client {
namespace {

// Address space mapped past the end of the file: appends are read without mapping again.
constexpr uint64_t kReserve = uint64_t{1} << 30;

}  // namespace

Result<std::shared_ptr<const LocalMapping>> LocalMapping::Map(rdma::UniqueFd fd, uint32_t vid,
                                                              uint64_t generation, uint8_t version,
                                                              uint64_t reserve) {
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) {
    return Error(Code::kIOError, fmt::format("volume {}: fstat of the agent's descriptor: {}", vid,
                                             std::strerror(errno)));
  }
  const uint64_t length = static_cast<uint64_t>(st.st_size) + reserve;
  if (length == 0) return Error(Code::kStale, fmt::format("volume {}: empty file", vid));
  // PROT_READ on an O_RDONLY descriptor: the kernel would refuse anything writable anyway.
  void* p = ::mmap(nullptr, length, PROT_READ, MAP_SHARED | MAP_NORESERVE, fd.get(), 0);
  if (p == MAP_FAILED) {
    return Error(Code::kIOError,
                 fmt::format("volume {}: mapping the agent's descriptor ({} bytes): {}", vid,
                             length, std::strerror(errno)));
  }
  // Reads are at random (needles); the kernel's read-ahead would fetch pages nobody asked for.
  ::madvise(p, length, MADV_RANDOM);
  const int slot = rdma::FaultGuard::Guard(p, length);
  if (slot < 0) {
    ::munmap(p, length);
    return Error(Code::kResourceExhausted,
                 fmt::format("volume {}: no fault-guard slot left for its mapping (too many "
                             "mapped volumes in this process)",
                             vid));
  }
  return std::shared_ptr<const LocalMapping>(new LocalMapping(
      std::move(fd), static_cast<std::byte*>(p), length, slot, vid, generation, version));
}

LocalMapping::~LocalMapping() {
  // Unmapped before the guard slot is freed: no moment where the range is mapped and unguarded.
  ::munmap(base_, length_);
  rdma::FaultGuard::Unguard(slot_);
}

bool LocalMapping::Faulted() const {
  if (!faulted_ && rdma::FaultGuard::TakeFaulted(slot_)) faulted_ = true;
  return faulted_;
}

Result<std::unique_ptr<LocalReader>> LocalReader::Connect(const std::string& path,
                                                          uint64_t instance,
                                                          std::chrono::milliseconds timeout) {
  SWRDMA_RETURN_IF_ERROR(rdma::FaultGuard::Install());
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Error(Code::kUnavailable, fmt::format("local socket path '{}' is unusable", path));
  }
  rdma::UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sock) {
    return Error(Code::kUnavailable, fmt::format("socket(AF_UNIX): {}", std::strerror(errno)));
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    return Error(
        err == EACCES ? Code::kPermissionDenied : Code::kUnavailable,
        fmt::format("connecting to the agent's local socket {}: {}", path, std::strerror(err)));
  }
  std::unique_ptr<LocalReader> r(new LocalReader(std::move(sock), path, timeout, kMaxLocalLookup));
  // The agent greets first (allowed or not): read it before writing anything.
  SWRDMA_ASSIGN_OR_RETURN(auto greeting,
                          rdma::ReceiveMessage(r->sock_.get(), kMaxLocalMessage, timeout));
  if (greeting.bytes.empty()) {
    return Error(Code::kUnavailable,
                 fmt::format("the agent's local socket {} closed without a greeting", path));
  }
  SWRDMA_ASSIGN_OR_RETURN(auto hello, DecodeHelloReply(greeting.bytes));
  if (hello.status == LocalStatus::kDenied) {
    return Error(
        Code::kPermissionDenied,
        fmt::format("the agent's local socket {} refused this user: {}", path, hello.reason));
  }
  if (hello.status != LocalStatus::kOk) {
    return Error(LocalStatusCode(hello.status), fmt::format("local socket {}: hello answered {}",
                                                            path, LocalStatusName(hello.status)));
  }
  if (hello.instance != instance) {
    // Same path, another agent (this host's, while the one asked is remote): not ours to use.
    return Error(Code::kUnavailable,
                 fmt::format("local socket {} belongs to another agent than the one asked", path));
  }
  r->max_lookup_ = std::clamp<size_t>(hello.max_lookup, 1, kMaxLocalLookup);
  return r;
}

Result<std::vector<uint8_t>> LocalReader::Call(const LocalRequest& req, rdma::UniqueFd* fd) {
  SWRDMA_RETURN_IF_ERROR(rdma::SendMessage(sock_.get(), EncodeLocalRequest(req)));
  SWRDMA_ASSIGN_OR_RETURN(auto msg, rdma::ReceiveMessage(sock_.get(), kMaxLocalMessage, timeout_));
  if (msg.bytes.empty()) {
    return Error(Code::kUnavailable,
                 fmt::format("the agent closed its local socket {} (restarted?)", path_));
  }
  if (fd != nullptr) *fd = std::move(msg.fd);
  return std::move(msg.bytes);
}

Result<std::vector<LocalLookupEntry>> LocalReader::Lookup(std::span<const std::string> fids) {
  std::vector<LocalLookupEntry> out;
  out.reserve(fids.size());
  for (size_t start = 0; start < fids.size(); start += max_lookup_) {
    const size_t n = std::min(max_lookup_, fids.size() - start);
    LocalRequest req{.op = LocalOp::kLookup};
    req.fids.assign(fids.begin() + static_cast<ptrdiff_t>(start),
                    fids.begin() + static_cast<ptrdiff_t>(start + n));
    SWRDMA_ASSIGN_OR_RETURN(auto bytes, Call(req));
    SWRDMA_ASSIGN_OR_RETURN(auto entries, DecodeLookupReply(bytes));
    if (entries.size() != n) {
      return Error(Code::kCorruption,
                   fmt::format("local lookup answered {} entries for {} fids", entries.size(), n));
    }
    stats_.lookups += n;
    for (auto& e : entries)
      out.push_back(std::move(e));
  }
  return out;
}

Result<std::shared_ptr<const LocalMapping>> LocalReader::MappingFor(uint32_t vid,
                                                                    uint64_t generation,
                                                                    uint64_t end) {
  auto it = maps_.find(vid);
  if (it != maps_.end() && it->second->generation() == generation) {
    const auto& m = it->second;
    if (end <= m->mapped_length()) return m;
    // Grown past the reserve: map the same file again (views keep the old mapping alive).
    rdma::UniqueFd again(::fcntl(m->fd(), F_DUPFD_CLOEXEC, 0));
    if (!again) {
      return Error(Code::kIOError, fmt::format("volume {}: dup: {}", vid, std::strerror(errno)));
    }
    SWRDMA_ASSIGN_OR_RETURN(
        auto grown, LocalMapping::Map(std::move(again), vid, generation, m->version(), kReserve));
    ++stats_.remaps;
    if (end > grown->mapped_length()) {
      return Error(Code::kStale,
                   fmt::format("volume {}: record ends at {} past the file's end", vid, end));
    }
    it->second = grown;
    return grown;
  }
  rdma::UniqueFd fd;
  SWRDMA_ASSIGN_OR_RETURN(auto bytes,
                          Call(LocalRequest{.op = LocalOp::kOpen, .volume_id = vid}, &fd));
  SWRDMA_ASSIGN_OR_RETURN(auto reply, DecodeOpenReply(bytes));
  if (reply.status != LocalStatus::kOk) {
    return Error(LocalStatusCode(reply.status),
                 fmt::format("opening volume {} over the local socket: {}", vid, reply.reason));
  }
  if (!fd) {
    return Error(Code::kCorruption,
                 fmt::format("the agent answered ok for volume {} but sent no descriptor", vid));
  }
  ++stats_.opens;
  SWRDMA_ASSIGN_OR_RETURN(
      auto m, LocalMapping::Map(std::move(fd), vid, reply.generation, reply.version, kReserve));
  maps_[vid] = m;
  if (reply.generation != generation) {
    return Error(Code::kStale, fmt::format("volume {}: the lookup named generation {}, the agent "
                                           "now serves {}",
                                           vid, generation, reply.generation));
  }
  if (end > m->mapped_length()) {
    return Error(Code::kStale,
                 fmt::format("volume {}: record ends at {} past the file's end", vid, end));
  }
  return m;
}

void LocalReader::Drop(uint32_t vid) {
  if (maps_.erase(vid) > 0) ++stats_.dropped;
}

}  // namespace swrdma::client
