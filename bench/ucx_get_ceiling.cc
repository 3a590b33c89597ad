// swrdma-bench-ucx: the bare UCX ceiling of the read path, and a memcpy reference.
//
// `--mode get` (default): the process forks before touching UCX. The child is the target: it
// maps --file (read-only, as the agent maps a volume) or an anonymous buffer it fills, registers
// it (MemoryRegion::Map), writes its worker address and packed rkey to a pipe and then busy-polls
// its worker until the parent says stop (a byte on a second pipe, or EOF if the parent dies). The
// parent is the initiator: it connects (same endpoint options as the client library), then posts
// windows of --window gets with GetBatch::PostInto into a buffer allocated and touched up front,
// waits for each window and records its latency once per get of the window (as `swrdma bench`
// does). With --sliding, a new get is posted as soon as one completes (--window in flight at
// all times, in chunks of 16 windows, as `swrdma bench` does) and each get's own latency is
// recorded. Offsets rotate through the region. No HTTP, no index, no verification: what is left is
// the UCX usage of the real read path, so the gap to `swrdma bench` is what the agent and client
// add on top of it.
//
// `--mode memcpy`: one core copying --size bytes at a time from a rotating 64 MiB source.
//
// Output: one JSON object (size, window, transport, ops, ops_per_sec, bytes_per_sec, p50_us,
// p99_us, mean_us, seconds, target).
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "client/cli/latency_histogram.h"
#include "protocol/status.h"
#include "rdma/mapped_file.h"
#include "rdma/ucx/get.h"
#include "rdma/ucx/memory_region.h"
#include "rdma/ucx/ucx_context.h"
#include "rdma/ucx/ucx_endpoint.h"
#include "rdma/ucx/ucx_worker.h"

namespace swrdma::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string mode = "get";
  std::string transports = "tcp";
  uint64_t size = 4096;
  size_t window = 1;
  uint64_t ops = 0;
  double seconds = 0;
  std::string file;
  uint64_t buffer_mib = 64;
  bool sliding = false;  // keep --window gets in flight, a new one posted as each completes
};

uint64_t Nanos(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

// ---- pipe framing: length-prefixed byte strings ----

Status WriteAll(int fd, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Status(Code::kIOError, fmt::format("writing to pipe: {}", strerror(errno)));
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status ReadAll(int fd, void* data, size_t n) {
  auto* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return Status(Code::kIOError, "reading from pipe: target exited (see its error)");
    if (r < 0) return Status(Code::kIOError, fmt::format("reading pipe: {}", strerror(errno)));
    p += r;
    n -= static_cast<size_t>(r);
  }
  return Status::Ok();
}

Status WriteBytes(int fd, const std::vector<uint8_t>& bytes) {
  const uint64_t n = bytes.size();
  SWRDMA_RETURN_IF_ERROR(WriteAll(fd, &n, sizeof n));
  return WriteAll(fd, bytes.data(), bytes.size());
}

Result<std::vector<uint8_t>> ReadBytes(int fd) {
  uint64_t n = 0;
  SWRDMA_RETURN_IF_ERROR(ReadAll(fd, &n, sizeof n));
  if (n > (64u << 20)) return Error(Code::kIOError, "reading pipe: implausible length");
  std::vector<uint8_t> bytes(n);
  SWRDMA_RETURN_IF_ERROR(ReadAll(fd, bytes.data(), n));
  return bytes;
}

// ---- target (child) ----

// Anonymous memory, filled so every page exists before the clock starts.
struct AnonBuffer {
  void* data = MAP_FAILED;
  size_t length = 0;
  ~AnonBuffer() {
    if (data != MAP_FAILED) ::munmap(data, length);
  }
};

Status RunTarget(const Args& a, int info_fd, int stop_fd) {
  rdma::UcxContextOptions co;
  co.transports = a.transports;
  co.rma = true;  // the bare-UCX ceiling: emulated gets, never used toward untrusted peers
  SWRDMA_ASSIGN_OR_RETURN(rdma::UcxContext context, rdma::UcxContext::Create(co));
  SWRDMA_ASSIGN_OR_RETURN(rdma::UcxWorker worker, rdma::UcxWorker::Create(context));
  std::optional<rdma::MappedFile> file;
  AnonBuffer anon;
  void* address = nullptr;
  size_t length = 0;
  if (!a.file.empty()) {
    rdma::MapOptions mo;
    mo.populate = true;  // page-cache pages mapped up front, as a warm volume is
    SWRDMA_ASSIGN_OR_RETURN(rdma::MappedFile mapped, rdma::MappedFile::Open(a.file, mo));
    file.emplace(std::move(mapped));
    address = const_cast<std::byte*>(file->data());
    length = file->size();
  } else {
    anon.length = a.buffer_mib << 20;
    anon.data =
        ::mmap(nullptr, anon.length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (anon.data == MAP_FAILED)
      return Status(Code::kIOError,
                    fmt::format("mmap of {} MiB: {}", a.buffer_mib, strerror(errno)));
    std::memset(anon.data, 0x5a, anon.length);
    address = anon.data;
    length = anon.length;
  }
  if (length < a.size) {
    return Status(
        Code::kInvalidArgument,
        fmt::format("target region of {} bytes is smaller than --size {}", length, a.size));
  }
  SWRDMA_ASSIGN_OR_RETURN(rdma::MemoryRegion region,
                          rdma::MemoryRegion::Map(context, address, length));
  SWRDMA_ASSIGN_OR_RETURN(rdma::RemoteRegion described, region.Describe(1));
  const uint64_t header[2] = {described.address, described.length};
  SWRDMA_RETURN_IF_ERROR(WriteBytes(info_fd, worker.address()));
  SWRDMA_RETURN_IF_ERROR(WriteAll(info_fd, header, sizeof header));
  SWRDMA_RETURN_IF_ERROR(WriteBytes(info_fd, described.rkey));
  ::close(info_fd);

  // Busy progress, as the agent's --progress busy: the emulated gets (tcp, shared memory over a
  // file mapping) are served by this loop. The stop pipe is looked at every 4096 rounds.
  ::fcntl(stop_fd, F_SETFL, O_NONBLOCK);
  for (uint64_t round = 0;; ++round) {
    worker.Progress();
    if ((round & 4095) != 0) continue;
    char c;
    const ssize_t r = ::read(stop_fd, &c, 1);
    if (r == 1 || r == 0) break;  // stop byte, or the parent is gone
  }
  // Drain whatever the initiator's endpoint close still needs.
  for (int i = 0; i < 1000; ++i)
    worker.Progress();
  return Status::Ok();
}

// ---- initiator (parent) ----

struct Measured {
  cli::LatencyHistogram latency;
  uint64_t ops = 0;
  double seconds = 0;
  std::string lanes;
};

Result<Measured> RunInitiator(const Args& a, int info_fd) {
  SWRDMA_ASSIGN_OR_RETURN(std::vector<uint8_t> remote_worker, ReadBytes(info_fd));
  uint64_t header[2];
  SWRDMA_RETURN_IF_ERROR(ReadAll(info_fd, header, sizeof header));
  rdma::RemoteRegion remote;
  remote.address = header[0];
  remote.length = header[1];
  remote.generation = 1;
  SWRDMA_ASSIGN_OR_RETURN(remote.rkey, ReadBytes(info_fd));

  rdma::UcxContextOptions co;
  co.transports = a.transports;
  co.rma = true;  // the bare-UCX ceiling: emulated gets, never used toward untrusted peers
  SWRDMA_ASSIGN_OR_RETURN(rdma::UcxContext context, rdma::UcxContext::Create(co));
  SWRDMA_ASSIGN_OR_RETURN(rdma::UcxWorker worker, rdma::UcxWorker::Create(context));
  rdma::UcxEndpointOptions eo;
  eo.connect_timeout = std::chrono::seconds(5);
  // As the client library: peer error handling unless the transports are shared memory only.
  const std::string& t = a.transports;
  if (t.find("tcp") == std::string::npos && t.find("rc") == std::string::npos &&
      t.find("dc") == std::string::npos && t.find("ud") == std::string::npos) {
    eo.error_handling = rdma::PeerErrorHandling::kNone;
  }
  SWRDMA_ASSIGN_OR_RETURN(rdma::UcxEndpoint endpoint,
                          rdma::UcxEndpoint::Connect(worker, remote_worker, eo));
  Measured m;
  {
    SWRDMA_ASSIGN_OR_RETURN(rdma::RemoteKey rkey, rdma::RemoteKey::Unpack(endpoint, remote));
    if (auto lanes = endpoint.Transports()) m.lanes = lanes->Summary();
    std::vector<std::byte> destination(a.size * a.window, std::byte{1});  // touched: no faults
    const uint64_t slots = remote.length / a.size;  // non-overlapping offsets in the region
    uint64_t next = 0;
    rdma::GetBatch batch(endpoint);
    auto window = [&]() -> Status {
      SWRDMA_RETURN_IF_ERROR(batch.Reset());
      for (size_t k = 0; k < a.window; ++k) {
        const uint64_t offset = (next++ % slots) * a.size;
        batch.PostInto(rkey, remote.address + offset,
                       std::span(destination).subspan(k * a.size, a.size));
      }
      SWRDMA_RETURN_IF_ERROR(batch.Wait(rdma::DeadlineIn(std::chrono::seconds(10))));
      return batch.FirstError();
    };
    // Sliding: `count` gets, at most a.window in flight; a destination slot is reused as soon
    // as its get completed.
    bool recording = false;
    std::vector<Clock::time_point> posted;
    std::vector<size_t> slot_of, free_slots, completed;
    auto sliding_chunk = [&](size_t count) -> Status {
      SWRDMA_RETURN_IF_ERROR(batch.Reset());
      posted.clear();
      slot_of.clear();
      free_slots.clear();
      for (size_t k = a.window; k-- > 0;)
        free_slots.push_back(k);
      auto harvest = [&] {
        batch.TakeCompleted(completed);
        const Clock::time_point now = Clock::now();
        for (size_t i : completed) {
          free_slots.push_back(slot_of[i]);
          if (!recording) continue;
          m.latency.Record(Nanos(now - posted[i]));
          ++m.ops;
        }
      };
      for (size_t k = 0; k < count; ++k) {
        if (batch.pending() >= a.window) {
          SWRDMA_RETURN_IF_ERROR(batch.WaitUntilPendingAtMost(
              a.window - 1, rdma::DeadlineIn(std::chrono::seconds(10))));
          harvest();
        }
        const size_t slot = free_slots.back();
        free_slots.pop_back();
        const uint64_t offset = (next++ % slots) * a.size;
        posted.push_back(Clock::now());
        slot_of.push_back(slot);
        batch.PostInto(rkey, remote.address + offset,
                       std::span(destination).subspan(slot * a.size, a.size));
      }
      SWRDMA_RETURN_IF_ERROR(batch.Wait(rdma::DeadlineIn(std::chrono::seconds(10))));
      harvest();
      return batch.FirstError();
    };
    const size_t chunk = a.window * 16;
    // Warm-up: wireup, first-touch of the lanes' buffers.
    for (int i = 0; i < 100; ++i)
      SWRDMA_RETURN_IF_ERROR(a.sliding ? sliding_chunk(a.window) : window());
    recording = true;
    const Clock::time_point start = Clock::now();
    const Clock::time_point end =
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(a.seconds > 0 ? a.seconds : 1e9));
    while (true) {
      if (a.ops > 0 && m.ops >= a.ops) break;
      const Clock::time_point t0 = Clock::now();
      if (a.ops == 0 && t0 >= end) break;
      if (a.sliding) {
        SWRDMA_RETURN_IF_ERROR(sliding_chunk(chunk));
        continue;
      }
      SWRDMA_RETURN_IF_ERROR(window());
      const uint64_t nanos = Nanos(Clock::now() - t0);
      for (size_t k = 0; k < a.window; ++k)
        m.latency.Record(nanos);
      m.ops += a.window;
    }
    m.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  }
  SWRDMA_RETURN_IF_ERROR(endpoint.Close(rdma::UcxEndpoint::CloseMode::kFlush,
                                        rdma::DeadlineIn(std::chrono::seconds(2))));
  return m;
}

Result<Measured> RunGet(const Args& a) {
  int info[2], stop[2];
  if (::pipe(info) != 0 || ::pipe(stop) != 0)
    return Error(Code::kIOError, fmt::format("pipe: {}", strerror(errno)));
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) return Error(Code::kIOError, fmt::format("fork: {}", strerror(errno)));
  if (child == 0) {
    ::close(info[0]);
    ::close(stop[1]);
    const Status s = RunTarget(a, info[1], stop[0]);
    if (!s.ok()) std::fprintf(stderr, "swrdma-bench-ucx target: %s\n", s.ToString().c_str());
    std::fflush(nullptr);
    ::_exit(s.ok() ? 0 : 1);
  }
  ::close(info[1]);
  ::close(stop[0]);
  Result<Measured> m = RunInitiator(a, info[0]);
  ::close(info[0]);
  const char c = 's';
  (void)WriteAll(stop[1], &c, 1);
  ::close(stop[1]);
  int wstatus = 0;
  ::waitpid(child, &wstatus, 0);
  if (m && !(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0))
    return Error(Code::kInternal, "the target process failed (see its error above)");
  return m;
}

// ---- memcpy ----

Measured RunMemcpy(const Args& a) {
  constexpr size_t kSource = 64u << 20;
  const size_t size = std::min<size_t>(a.size, kSource);
  std::vector<std::byte> source(kSource, std::byte{0x5a});
  std::vector<std::byte> destination(size, std::byte{1});
  const size_t slots = kSource / size;
  Measured m;
  m.lanes = "memcpy";
  const Clock::time_point start = Clock::now();
  const Clock::time_point end =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(a.seconds > 0 ? a.seconds : 1e9));
  uint64_t next = 0;
  while (true) {
    if (a.ops > 0 && m.ops >= a.ops) break;
    const Clock::time_point t0 = Clock::now();
    if (a.ops == 0 && t0 >= end) break;
    std::memcpy(destination.data(), source.data() + (next++ % slots) * size, size);
    // Keeps the copy from being optimised away.
    asm volatile("" : : "r"(destination.data()) : "memory");
    m.latency.Record(Nanos(Clock::now() - t0));
    ++m.ops;
  }
  m.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return m;
}

int Main(int argc, char** argv) {
  Args a;
  CLI::App app{"Bare UCX get ceiling (fork: target + initiator) and memcpy reference; prints JSON"};
  app.add_option("--mode", a.mode, "get: ucp_get_nbx loops; memcpy: single-core copies")
      ->check(CLI::IsMember({"get", "memcpy"}))
      ->capture_default_str();
  app.add_option("--transports", a.transports,
                 "UCX_TLS for both processes, e.g. tcp or "
                 "posix,sysv,cma")
      ->capture_default_str();
  app.add_option("--size", a.size, "Bytes per get (or per copy); suffixes K, M")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--window", a.window, "Gets posted at once and waited for together")
      ->check(CLI::Range(size_t{1}, size_t{4096}))
      ->capture_default_str();
  auto* ops = app.add_option("--ops", a.ops, "Ops in the timed run (default: --seconds 3)");
  app.add_option("--seconds", a.seconds, "Timed run length")->excludes(ops);
  app.add_option("--file", a.file,
                 "Target maps this file (e.g. a volume .dat) instead of an "
                 "anonymous buffer");
  app.add_flag("--sliding", a.sliding,
               "Keep --window gets in flight (post one as each completes) instead of waiting "
               "for whole windows");
  app.add_option("--buffer-mib", a.buffer_mib, "Anonymous target buffer size, MiB")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (a.ops == 0 && a.seconds <= 0) a.seconds = 3;
  if (a.size == 0) {
    std::fprintf(stderr, "swrdma-bench-ucx: --size must be > 0\n");
    return 2;
  }

  Result<Measured> m = a.mode == "memcpy" ? Result<Measured>(RunMemcpy(a)) : RunGet(a);
  if (!m) {
    std::fprintf(stderr, "swrdma-bench-ucx: %s\n", m.error().ToString().c_str());
    return 1;
  }
  const double secs = m->seconds > 0 ? m->seconds : 1e-9;
  nlohmann::json j = {
      {"mode", a.mode},
      {"size", a.size},
      {"window", a.mode == "memcpy" ? size_t{1} : a.window},
      {"transport", a.mode == "memcpy" ? std::string("memcpy") : a.transports},
      {"lanes", m->lanes},
      {"target", a.file.empty() ? std::string("anonymous") : a.file},
      {"ops", m->ops},
      {"seconds", m->seconds},
      {"ops_per_sec", static_cast<double>(m->ops) / secs},
      {"bytes_per_sec", static_cast<double>(m->ops * a.size) / secs},
      {"p50_us", static_cast<double>(m->latency.Percentile(0.5)) / 1000.0},
      {"p99_us", static_cast<double>(m->latency.Percentile(0.99)) / 1000.0},
      {"mean_us", m->latency.mean() / 1000.0},
      {"latency", a.window > 1 && a.mode == "get" && !a.sliding ? "window" : "op"},
      {"sliding", a.sliding},
  };
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace swrdma::bench

int main(int argc, char** argv) {
  return swrdma::bench::Main(argc, argv);
}
