// Fuzzes the client's parser of the agent's reply stream over TCP (client/tcp_checked_reader.h):
// the bytes an agent (or whatever answers on its read port) sends after a request for three
// fids. Whatever arrives, the reader must never read or write past a buffer, size a buffer by
// an unchecked length, hand out an arrival twice or for a fid it did not ask for, or hang: it
// ends with every fid answered or an error.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <set>
#include <vector>

#include "client/tcp_checked_reader.h"
#include "rdma/buffer_pool.h"

namespace {

swrdma::rdma::BufferPool& Pool() {
  static swrdma::client::PlainRegistrar registrar;
  static std::optional<swrdma::rdma::BufferPool> pool;
  if (!pool) {
    // Inputs name record sizes up to 4 GiB; the default 512 MiB of idle buffers kept for reuse,
    // on top of ASan's quarantine, took the process past libFuzzer's 2 GiB RSS limit within
    // seconds (an out-of-memory report, not a bug): keep little idle here.
    swrdma::rdma::BufferPoolOptions options;
    options.max_idle_bytes = size_t{32} << 20;
    pool.emplace(std::move(*swrdma::rdma::BufferPool::Create(registrar, options)));
  }
  return *pool;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  auto reader = swrdma::client::TcpCheckedReader::Adopt(fds[0], Pool());
  // Records named up to 4 GiB would each be mapped and touched whole: ASan's quarantine on top
  // took the process past libFuzzer's 2 GiB RSS limit. The limit's own check is reached all
  // the same.
  reader->set_max_record_bytes(size_t{16} << 20);
  std::vector<swrdma::ReadRequestEntry> entries = {
      {"3,01637037d6", ""}, {"3,02", ""}, {"4,0a", ""}};
  std::vector<size_t> tags = {10, 11, 12};
  if (!reader->Send(entries, tags, false).ok()) std::abort();
  // The agent's side: the input, as much as the socket takes, then end of stream.
  size_t sent = 0;
  while (sent < size) {
    const ssize_t n = ::send(fds[1], data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fds[1], SHUT_WR);
  std::vector<swrdma::client::CheckedArrival> out;
  const auto deadline = swrdma::rdma::DeadlineIn(std::chrono::seconds(10));
  while (reader->outstanding() > 0) {
    if (!reader->Poll(out, deadline).ok()) break;
  }
  std::set<size_t> seen;
  for (const auto& a : out) {
    if (a.tag < 10 || a.tag > 12 || !seen.insert(a.tag).second) std::abort();
    if (a.header.status == swrdma::ReadStatus::kOk && a.error.ok() && !a.record) std::abort();
  }
  reader.reset();
  ::close(fds[1]);
  return 0;
}
