// swrdma-verbs-vmtest: the verbs data path against a real kernel RDMA stack (run inside the
// Soft-RoCE VM by tests/vm/guest/run.sh, on kernel 6.1 and 6.12).
//
// Generates a volume, forks an exporting process (the agent's role: one protection domain, the
// .dat mapped and registered REMOTE_READ only with the mapping this kernel pins, rdma_cm
// listener, QPs with REMOTE_READ only) and, as the reading process:
//   - reads every live needle over RDMA READ (header, then the record), compares the bytes with
//     the file, parses the record and checks its CRC and its data;
//   - reads 4 KiB records in a window and one at a time: latency, and the exporting process's
//     CPU against ours over the same interval;
//   - hostile checks: RDMA WRITE and atomics into the export (strict QP; and through a
//     permissive QP, so the MR alone must refuse), WRITE into a writable MR through the strict
//     QP (the QP alone must refuse), READ past the MR end, forged rkey, and the old
//     generation's rkey after the export was re-registered. The file must not change and the
//     exporting process must keep serving.
// Prints progress on stderr and writes one JSON object (--json).
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

// The sanitizer pass of the VM test (SWRDMA_VM_SANITIZE=1, scripts/sanitize.sh) runs an
// AddressSanitizer build: the exporting child ends with _exit, which skips LeakSanitizer's
// check at exit, so it runs the check itself first.
#if defined(__SANITIZE_ADDRESS__)
#define SWRDMA_VMTEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SWRDMA_VMTEST_ASAN 1
#endif
#endif
#ifdef SWRDMA_VMTEST_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#include "protocol/gzip.h"
#include "protocol/needle.h"
#include "rdma/verbs/completion_queue.h"
#include "rdma/verbs/connection.h"
#include "rdma/verbs/device.h"
#include "rdma/verbs/file_export.h"
#include "rdma/verbs/memory_region.h"
#include "rdma/verbs/verbs_status.h"
#include "tests/vm/verbs_peer.h"
#include "volume/volume_generator.h"

namespace swrdma::rdma::verbs {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Options {
  std::string device = "rxe0";
  std::string address = "192.0.2.1";
  uint16_t port = 18515;  // strict QPs; port + 1: permissive QPs (test only, MR layer check)
  std::filesystem::path dir = "/var/tmp/swrdma-vmtest";
  std::string json_path;
  uint64_t window_reads = 100000;
  uint64_t latency_reads = 2000;
  uint64_t needles = 150;
};

void Log(const char* format, auto... args) {
  std::fprintf(stderr, "[vmtest] ");
  std::fprintf(stderr, format, args...);
  std::fprintf(stderr, "\n");
}

// What the exporting side tells a reader in its accept message.
struct Offer {
  uint32_t magic = 0x58575753;  // "SWWX"
  uint32_t generation = 0;
  uint64_t address = 0;
  uint64_t length = 0;
  uint32_t rkey = 0;
  uint32_t qp_access = 0;        // the exporting QP's remote access flags, as ibv_query_qp says
  uint64_t scratch_address = 0;  // a writable MR (test only): the QP alone must refuse writes
  uint32_t scratch_rkey = 0;
  uint8_t mapping = 0;  // ExportMapping
};
static_assert(sizeof(Offer) <= kMaxAcceptPrivateData);

std::vector<uint8_t> Bytes(const Offer& offer) {
  std::vector<uint8_t> out(sizeof offer);
  std::memcpy(out.data(), &offer, sizeof offer);
  return out;
}

// ------------------------------------------------------------------------- exporting process

// A line to the parent through the pipe.
void Tell(int fd, const std::string& line) {
  std::string l = line + "\n";
  if (write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) _exit(3);
}

int RunExporter(const Options& opt, const std::filesystem::path& dat, int control, int report) {
  auto fail = [&](const Status& s) {
    Tell(report, "error " + s.ToString());
    return 1;
  };
  auto device = Device::Open(opt.device);
  if (!device) return fail(device.error());
  auto pd = ProtectionDomain::Open(*device);
  if (!pd) return fail(pd.error());
  auto cq = CompletionQueue::Open(*device, 64);
  if (!cq) return fail(cq.error());
  auto mapping = ChooseExportMapping(*pd, opt.dir);
  if (!mapping) return fail(mapping.error());
  Log("exporter: kernel pins %s for REMOTE_READ-only registrations; using it",
      std::string(ExportMappingName(*mapping)).c_str());
  uint32_t generation = 1;
  auto exported = ExportedFile::Open(*pd, dat, *mapping, generation);
  if (!exported) return fail(exported.error());
  // Test only: a writable MR with every remote right, to show that the strict QP alone refuses.
  static std::vector<std::byte> scratch(65536, std::byte{0x11});
  ibv_mr* scratch_mr = ibv_reg_mr(pd->get(), scratch.data(), scratch.size(),
                                  IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
                                      IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC);
  if (scratch_mr == nullptr) return fail(FromErrno(errno, "scratch ibv_reg_mr"));
  auto strict = Listener::Open(opt.address, opt.port);
  if (!strict) return fail(strict.error());
  auto permissive = Listener::Open(opt.address, static_cast<uint16_t>(opt.port + 1));
  if (!permissive) return fail(permissive.error());
  Tell(report, "ready " + std::string(ExportMappingName(*mapping)));

  std::vector<Connection> connections;
  for (;;) {
    pollfd fds[3] = {
        {strict->fd(), POLLIN, 0}, {permissive->fd(), POLLIN, 0}, {control, POLLIN, 0}};
    if (poll(fds, 3, 1000) < 0 && errno != EINTR) return fail(FromErrno(errno, "poll"));
    for (int which = 0; which < 2; ++which) {
      if ((fds[which].revents & POLLIN) == 0) continue;
      ConnectionOptions options;
      options.remote_access =
          which == 0 ? IBV_ACCESS_REMOTE_READ
                     : IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC;
      options.initiator_depth = 0;  // the exporter issues no READs
      Offer offer;
      RemoteRegion region = exported->Describe();
      offer.generation = generation;
      offer.address = region.address;
      offer.length = region.length;
      offer.rkey = exported->region().rkey();
      offer.qp_access = static_cast<uint32_t>(options.remote_access);
      offer.scratch_address = reinterpret_cast<uintptr_t>(scratch.data());
      offer.scratch_rkey = scratch_mr->rkey;
      offer.mapping = static_cast<uint8_t>(*mapping);
      const Listener& listener = which == 0 ? *strict : *permissive;
      auto conn = listener.Accept(*pd, *cq, Bytes(offer), options);
      if (!conn) {
        Log("exporter: accept failed: %s", conn.error().ToString().c_str());
        continue;
      }
      auto access = conn->QueryRemoteAccess();
      if (!access || *access != options.remote_access) {
        Log("exporter: QP access flags are 0x%x, asked 0x%x", access ? *access : -1,
            options.remote_access);
        return 1;
      }
      connections.push_back(std::move(*conn));
    }
    // Drop connections whose peer left (their QPs are dead: hostile ones are in error).
    std::erase_if(connections, [](Connection& c) {
      auto gone = c.PeerGone();
      return !gone || *gone;
    });
    ibv_wc drain[16];
    while (cq->Poll(drain).value_or(0) > 0) {
    }
    if ((fds[2].revents & (POLLIN | POLLHUP)) != 0) {
      char command = 0;
      if (read(control, &command, 1) != 1 || command == 'Q') break;
      if (command == 'R') {
        // Retire the generation: register the file again, then drop the old registration.
        auto next = ExportedFile::Open(*pd, dat, *mapping, generation + 1);
        if (!next) return fail(next.error());
        exported = std::move(next);
        ++generation;
        Tell(report, "retired " + std::to_string(generation));
      }
    }
  }
  connections.clear();
  ibv_dereg_mr(scratch_mr);
  return 0;
}

// ---------------------------------------------------------------------------- reading process

uint64_t ProcessCpuMs(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields;
  std::string field;
  for (char c : stat.substr(close + 2)) {
    if (c == ' ') {
      fields.push_back(field);
      field.clear();
    } else {
      field += c;
    }
  }
  // Fields after the comm start at the state (field 3): utime is field 14, stime field 15.
  uint64_t ticks = std::stoull(fields.at(11)) + std::stoull(fields.at(12));
  return ticks * 1000 / static_cast<uint64_t>(sysconf(_SC_CLK_TCK));
}

uint64_t SelfCpuMs() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto ms = [](timeval t) { return static_cast<uint64_t>(t.tv_sec) * 1000 + t.tv_usec / 1000; };
  return ms(u.ru_utime) + ms(u.ru_stime);
}

class Reader {
 public:
  Reader(Device device, ProtectionDomain pd, CompletionQueue cq, std::vector<std::byte>& landing,
         MemoryRegion landing_mr, const Options& opt)
      : device_(std::move(device)),
        pd_(std::move(pd)),
        cq_(std::move(cq)),
        landing_(landing),
        landing_mr_(std::move(landing_mr)),
        opt_(opt) {}

  Result<Connection> Connect(bool permissive, Offer& offer) {
    ConnectionOptions options;
    options.remote_access = 0;  // nothing of ours is remotely accessible
    options.responder_resources = 0;
    SWRDMA_ASSIGN_OR_RETURN(
        Connection conn,
        Connection::Connect(pd_, cq_, opt_.address,
                            static_cast<uint16_t>(opt_.port + (permissive ? 1 : 0)), {}, options));
    if (conn.peer_data().size() < sizeof offer) {
      return Error(Code::kCorruption, "short offer from the exporter");
    }
    std::memcpy(&offer, conn.peer_data().data(), sizeof offer);
    if (offer.magic != Offer{}.magic) return Error(Code::kCorruption, "bad offer magic");
    return conn;
  }

  // One READ of `length` bytes into landing[slot_offset...], waited for.
  Status ReadOne(Connection& conn, uint64_t remote, uint32_t rkey, size_t length,
                 size_t slot_offset = 0) {
    std::span<std::byte> dst(landing_.data() + slot_offset, length);
    SWRDMA_RETURN_IF_ERROR(conn.PostRead(dst, landing_mr_.lkey(), remote, rkey, 1));
    SWRDMA_ASSIGN_OR_RETURN(ibv_wc wc, cq_.WaitOne(std::chrono::seconds(10)));
    return FromWc(wc.status, "RDMA READ of " + std::to_string(length) + " bytes");
  }

  // Posts one raw work request (hostile ones: WRITE, atomics) and returns its completion status.
  Result<ibv_wc_status> PostRaw(Connection& conn, ibv_wr_opcode opcode, uint64_t remote,
                                uint32_t rkey, size_t length) {
    return vmtest::PostAndWait(conn, cq_, {landing_.data(), length}, landing_mr_.lkey(), opcode,
                               remote, rkey);
  }

  CompletionQueue& cq() { return cq_; }
  std::vector<std::byte>& landing() { return landing_; }
  const MemoryRegion& landing_mr() const { return landing_mr_; }
  const Device& device() const { return device_; }

 private:
  Device device_;
  ProtectionDomain pd_;
  CompletionQueue cq_;
  std::vector<std::byte>& landing_;
  MemoryRegion landing_mr_;
  const Options& opt_;
};

std::vector<uint8_t> ReadFile(const std::filesystem::path& path) {
  // One read of the whole file: byte by byte (istreambuf_iterator) took ~50 s for the 37 MB
  // volume in the ASan build under TCG.
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return {};
  std::vector<uint8_t> bytes(size);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

uint64_t Differing(const std::byte* a, const uint8_t* b, size_t n) {
  uint64_t d = 0;
  for (size_t i = 0; i < n; ++i)
    d += static_cast<uint8_t>(a[i]) != b[i];
  return d;
}

int Run(const Options& opt) {
  std::filesystem::remove_all(opt.dir);
  std::filesystem::create_directories(opt.dir);
  GenerateOptions gen;
  gen.dir = opt.dir;
  gen.volume_id = 7;
  gen.needles = opt.needles;
  gen.min_size = 1;
  gen.max_size = 512 << 10;
  gen.gzip_fraction = 0.2;
  gen.delete_fraction = 0.1;
  gen.seed = 14;
  auto report = GenerateVolume(gen, {});
  if (!report) {
    Log("generating the volume failed: %s", report.error().ToString().c_str());
    return 1;
  }
  Log("volume %s: %zu needles, %llu bytes", report->dat.c_str(), report->needles.size(),
      static_cast<unsigned long long>(report->dat_size));
  const std::vector<uint8_t> before = ReadFile(report->dat);

  int to_exporter[2], from_exporter[2];
  if (pipe(to_exporter) != 0 || pipe(from_exporter) != 0) return 1;
  // Fork before any verbs call: a verbs context must not cross fork().
  pid_t exporter = fork();
  if (exporter == 0) {
    close(to_exporter[1]);
    close(from_exporter[0]);
    int rc = RunExporter(opt, report->dat, to_exporter[0], from_exporter[1]);
#ifdef SWRDMA_VMTEST_ASAN
    __lsan_do_leak_check();  // exits with LSan's report when the exporter leaked
#endif
    _exit(rc);
  }
  close(to_exporter[0]);
  close(from_exporter[1]);
  FILE* reports = fdopen(from_exporter[0], "r");
  auto next_report = [&]() -> std::string {
    pollfd pfd{from_exporter[0], POLLIN, 0};
    char line[512];
    if (poll(&pfd, 1, 60000) <= 0 || fgets(line, sizeof line, reports) == nullptr) {
      return "error: no word from the exporting process within 60 s";
    }
    std::string s(line);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  };
  json result = {{"transport", "verbs"}, {"ok", false}};
  auto finish = [&](int rc) {
    if (write(to_exporter[1], "Q", 1) != 1) {
    }
    int status = 0;
    waitpid(exporter, &status, 0);
    result["exporter_exit"] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    // A failing exporter fails the run even when every read succeeded (under ASan: a report
    // after the last read, or a leak found at its exit).
    if (result["exporter_exit"] != 0) {
      Log("the exporting process ended with %s %d", WIFEXITED(status) ? "status" : "signal",
          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      result["ok"] = false;
      rc = 1;
    }
    std::string text = result.dump();
    if (!opt.json_path.empty()) std::ofstream(opt.json_path) << text << "\n";
    std::printf("%s\n", text.c_str());
    return rc;
  };
  std::string ready = next_report();
  if (ready.rfind("ready ", 0) != 0) {
    Log("exporting process failed: %s", ready.c_str());
    result["error"] = ready;
    return finish(1);
  }
  result["mapping"] = ready.substr(6);

  // The reading side: its own device context, PD, CQ and landing buffer.
  auto device = Device::Open(opt.device);
  if (!device) return Log("%s", device.error().ToString().c_str()), finish(1);
  auto caps = device->QueryCaps();
  if (caps) {
    result["odp"] = caps->odp;
    result["odp_rc_read"] = caps->odp_rc_read;
  }
  auto pd = ProtectionDomain::Open(*device);
  auto cq = pd ? CompletionQueue::Open(*device, 256) : Result<CompletionQueue>(Error(pd.error()));
  if (!cq) return Log("%s", cq.error().ToString().c_str()), finish(1);
  size_t largest = 0;
  for (const auto& n : report->needles)
    largest = std::max<size_t>(largest, n.stored_size);
  std::vector<std::byte> landing(std::max<size_t>(largest + 65536, 64 * 4096));
  auto landing_mr = MemoryRegion::Open(*pd, landing.data(), landing.size(), Access::kLocalWrite);
  if (!landing_mr) return Log("%s", landing_mr.error().ToString().c_str()), finish(1);
  Reader reader(std::move(*device), std::move(*pd), std::move(*cq), landing, std::move(*landing_mr),
                opt);

  Offer offer;
  auto conn = reader.Connect(false, offer);
  if (!conn) return Log("connect: %s", conn.error().ToString().c_str()), finish(1);
  result["exporter_qp_access"] = offer.qp_access;
  result["exporter_qp_read_only"] = offer.qp_access == IBV_ACCESS_REMOTE_READ;
  Log("connected: export %llu bytes at 0x%llx rkey 0x%x generation %u (%s), exporter QP access "
      "0x%x",
      static_cast<unsigned long long>(offer.length), static_cast<unsigned long long>(offer.address),
      offer.rkey, offer.generation, result["mapping"].get<std::string>().c_str(), offer.qp_access);

  // 1. Every live needle: header, record; bytes against the file, CRC, data.
  uint64_t reads = 0, wrong_bytes = 0, crc_failures = 0, needles_read = 0, errors = 0;
  for (const auto& n : report->needles) {
    if (n.deleted) continue;
    Status s = reader.ReadOne(*conn, offer.address + n.offset, offer.rkey, kNeedleHeaderSize);
    ++reads;
    if (!s.ok()) {
      Log("needle header: %s", s.ToString().c_str());
      ++errors;
      break;
    }
    auto header =
        ParseNeedleHeader({reinterpret_cast<uint8_t*>(landing.data()), kNeedleHeaderSize});
    if (!header) {
      ++errors;
      continue;
    }
    uint64_t length = NeedleRecordLength(header->size, NeedleVersion::kV3);
    s = reader.ReadOne(*conn, offer.address + n.offset, offer.rkey, length);
    ++reads;
    if (!s.ok()) {
      Log("needle record: %s", s.ToString().c_str());
      ++errors;
      break;
    }
    wrong_bytes += Differing(landing.data(), before.data() + n.offset, length);
    std::span<const uint8_t> bytes(reinterpret_cast<uint8_t*>(landing.data()), length);
    auto record = ParseNeedleRecord(bytes, NeedleVersion::kV3);
    if (!record) {
      ++errors;
      continue;
    }
    auto verified = VerifyNeedle(*record, {.id = n.fid.needle_id, .cookie = n.fid.cookie});
    if (!verified) {
      if (verified.error().code() == Code::kChecksumMismatch)
        ++crc_failures;
      else
        ++errors;
      continue;
    }
    std::vector<uint8_t> data(record->data.begin(), record->data.end());
    if (record->is_gzipped())
      data = Gunzip(record->data, 64 << 20).value_or(std::vector<uint8_t>{});
    auto expected = GeneratedNeedleData(gen.seed, n.fid.needle_id, n.size, n.gzipped);
    if (data != expected) ++errors;
    ++needles_read;
  }
  Log("needles: %llu read over RDMA READ, %llu wrong bytes, %llu CRC failures, %llu other errors",
      (unsigned long long)needles_read, (unsigned long long)wrong_bytes,
      (unsigned long long)crc_failures, (unsigned long long)errors);
  result["needles_read"] = needles_read;

  // 2. 4 KiB READs: a window of outstanding reads (CPU of both processes), then one at a time.
  const uint64_t pages = offer.length / 4096;
  const size_t depth = std::max<size_t>(1, std::min<size_t>(conn->initiator_depth(), 32));
  std::mt19937_64 rng(14);
  std::vector<uint64_t> slot_page(depth);
  // The exporter's CPU while nobody reads, as a baseline for the figure below.
  uint64_t idle0 = ProcessCpuMs(exporter);
  usleep(1000000);
  result["agent_idle_cpu_ms_per_s"] = ProcessCpuMs(exporter) - idle0;
  uint64_t agent0 = ProcessCpuMs(exporter), self0 = SelfCpuMs();
  auto t0 = Clock::now();
  uint64_t posted = 0, done = 0;
  ibv_wc wcs[32];
  while (done < opt.window_reads && errors == 0) {
    while (posted < opt.window_reads && posted - done < depth) {
      size_t slot = posted % depth;
      slot_page[slot] = rng() % pages;
      Status s = conn->PostRead({landing.data() + slot * 4096, 4096}, reader.landing_mr().lkey(),
                                offer.address + slot_page[slot] * 4096, offer.rkey, slot);
      if (!s.ok()) {
        Log("%s", s.ToString().c_str());
        ++errors;
        break;
      }
      ++posted;
    }
    auto n = reader.cq().Poll(wcs);
    if (!n) {
      ++errors;
      break;
    }
    for (size_t i = 0; i < *n; ++i) {
      if (wcs[i].status != IBV_WC_SUCCESS) {
        Log("%s", FromWc(wcs[i].status, "windowed READ").ToString().c_str());
        ++errors;
        continue;
      }
      size_t slot = wcs[i].wr_id;
      wrong_bytes +=
          Differing(landing.data() + slot * 4096, before.data() + slot_page[slot] * 4096, 4096);
      ++done;
      ++reads;
    }
  }
  double window_s = std::chrono::duration<double>(Clock::now() - t0).count();
  uint64_t agent_cpu = ProcessCpuMs(exporter) - agent0, client_cpu = SelfCpuMs() - self0;
  Log("%llu windowed 4 KiB READs (depth %zu) in %.2f s: %.0f reads/s; CPU: exporter %llu ms, "
      "reader %llu ms",
      (unsigned long long)done, depth, window_s, done / window_s, (unsigned long long)agent_cpu,
      (unsigned long long)client_cpu);
  result["window_reads"] = done;
  result["window_depth"] = depth;
  result["window_reads_per_s"] = static_cast<uint64_t>(done / window_s);
  result["agent_cpu_ms"] = agent_cpu;
  result["client_cpu_ms"] = client_cpu;
  result["agent_cpu_under_1pct_of_client"] = agent_cpu * 100 < client_cpu;

  std::vector<double> lat;
  for (uint64_t i = 0; i < opt.latency_reads && errors == 0; ++i) {
    uint64_t page = rng() % pages;
    auto s0 = Clock::now();
    Status s = reader.ReadOne(*conn, offer.address + page * 4096, offer.rkey, 4096);
    lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s0).count());
    if (!s.ok()) {
      ++errors;
      break;
    }
    wrong_bytes += Differing(landing.data(), before.data() + page * 4096, 4096);
    ++reads;
  }
  if (!lat.empty()) {
    std::sort(lat.begin(), lat.end());
    double sum = 0;
    for (double v : lat)
      sum += v;
    result["read_4k_latency_us"] = {{"avg", sum / lat.size()},
                                    {"p50", lat[lat.size() / 2]},
                                    {"p99", lat[lat.size() * 99 / 100]},
                                    {"n", lat.size()}};
    Log("4 KiB READ latency (one outstanding, TCG): avg %.1f us, p50 %.1f, p99 %.1f",
        sum / lat.size(), lat[lat.size() / 2], lat[lat.size() * 99 / 100]);
  }

  // 3. Hostile peers. Each refusal puts the QP in error, so each gets a fresh connection.
  json statuses;
  auto hostile = [&](const char* name, bool permissive, ibv_wr_opcode opcode, bool scratch,
                     uint64_t remote_offset, uint32_t rkey_xor, size_t length) -> bool {
    Offer o;
    auto c = reader.Connect(permissive, o);
    if (!c) {
      statuses[name] = "connect failed: " + c.error().ToString();
      return false;
    }
    uint64_t remote = (scratch ? o.scratch_address : o.address) + remote_offset;
    uint32_t rkey = (scratch ? o.scratch_rkey : o.rkey) ^ rkey_xor;
    auto st = reader.PostRaw(*c, opcode, remote, rkey, length);
    if (!st) {
      statuses[name] = st.error().ToString();
      return false;
    }
    statuses[name] = ibv_wc_status_str(*st);
    Log("hostile %-28s -> %s", name, ibv_wc_status_str(*st));
    return vmtest::Refused(*st);
  };
  bool write_refused = hostile("write", false, IBV_WR_RDMA_WRITE, false, 0, 0, 64);
  write_refused &= hostile("write_mr_layer", true, IBV_WR_RDMA_WRITE, false, 4096, 0, 64);
  write_refused &= hostile("write_qp_layer", false, IBV_WR_RDMA_WRITE, true, 0, 0, 64);
  bool atomic_refused = hostile("fetch_add", false, IBV_WR_ATOMIC_FETCH_AND_ADD, false, 0, 0, 8);
  atomic_refused &= hostile("cmp_swap", false, IBV_WR_ATOMIC_CMP_AND_SWP, false, 64, 0, 8);
  atomic_refused &=
      hostile("fetch_add_mr_layer", true, IBV_WR_ATOMIC_FETCH_AND_ADD, false, 128, 0, 8);
  bool oob_refused =
      hostile("read_past_end", false, IBV_WR_RDMA_READ, false, offer.length - 16, 0, 4096);
  bool forged_refused = hostile("forged_rkey", false, IBV_WR_RDMA_READ, false, 0, 0x100, 64);
  bool file_unchanged = ReadFile(report->dat) == before;
  Log("file unchanged after the hostile requests: %s", file_unchanged ? "yes" : "NO");
  result["file_unchanged"] = file_unchanged;

  // 4. Generation retired: the old rkey must fail, the new one must read the same bytes.
  bool old_refused = false;
  if (write(to_exporter[1], "R", 1) == 1) {
    std::string retired = next_report();
    Log("exporter: %s", retired.c_str());
    Offer fresh;
    auto c = reader.Connect(false, fresh);
    if (c && fresh.generation == offer.generation + 1) {
      Status ok = reader.ReadOne(*c, fresh.address, fresh.rkey, 4096);
      bool same = ok.ok() && Differing(landing.data(), before.data(), 4096) == 0;
      auto st = reader.PostRaw(*c, IBV_WR_RDMA_READ, offer.address, offer.rkey, 4096);
      statuses["old_generation_rkey"] = st ? ibv_wc_status_str(*st) : st.error().ToString();
      old_refused = same && st && WcCode(*st) == Code::kRdmaRemoteAccess;
      Log("old generation %u rkey 0x%x after retirement -> %s; new generation %u reads: %s",
          offer.generation, offer.rkey, statuses["old_generation_rkey"].get<std::string>().c_str(),
          fresh.generation, same ? "same bytes" : "FAILED");
    }
  }

  // 5. The exporter survived all of it and serves a well-behaved reader.
  Offer last;
  auto again = reader.Connect(false, last);
  bool survived = again.has_value() &&
                  reader.ReadOne(*again, last.address + 8192, last.rkey, 4096).ok() &&
                  Differing(landing.data(), before.data() + 8192, 4096) == 0;
  ++reads;
  Log("exporter still serving after the hostile peers: %s", survived ? "yes" : "NO");

  result["reads"] = reads;
  result["wrong_bytes"] = wrong_bytes;
  result["crc_failures"] = crc_failures;
  result["read_errors"] = errors;
  result["hostile_write_refused"] = write_refused && file_unchanged;
  result["hostile_atomic_refused"] = atomic_refused && file_unchanged;
  result["out_of_bounds_refused"] = oob_refused;
  result["forged_rkey_refused"] = forged_refused;
  result["old_generation_refused"] = old_refused;
  result["exporter_survived"] = survived;
  result["statuses"] = statuses;
  bool ok = errors == 0 && wrong_bytes == 0 && crc_failures == 0 && write_refused &&
            atomic_refused && oob_refused && forged_refused && old_refused && file_unchanged &&
            survived && offer.qp_access == IBV_ACCESS_REMOTE_READ;
  result["ok"] = ok;
  again = Error(Code::kCancelled, "");
  conn = Error(Code::kCancelled, "");
  return finish(ok ? 0 : 1);
}

}  // namespace
}  // namespace swrdma::rdma::verbs

int main(int argc, char** argv) {
  swrdma::rdma::verbs::Options opt;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--device")
      opt.device = value;
    else if (flag == "--address")
      opt.address = value;
    else if (flag == "--port")
      opt.port = static_cast<uint16_t>(std::stoi(value));
    else if (flag == "--dir")
      opt.dir = value;
    else if (flag == "--json")
      opt.json_path = value;
    else if (flag == "--window-reads")
      opt.window_reads = std::stoull(value);
    else if (flag == "--latency-reads")
      opt.latency_reads = std::stoull(value);
    else if (flag == "--needles")
      opt.needles = std::stoull(value);
    else {
      std::fprintf(stderr,
                   "unknown flag %s\nusage: %s [--device rxe0] [--address IP] [--port N] "
                   "[--dir D] [--json FILE] [--window-reads N] [--latency-reads N] [--needles N]\n",
                   flag.c_str(), argv[0]);
      return 2;
    }
  }
  return swrdma::rdma::verbs::Run(opt);
}
