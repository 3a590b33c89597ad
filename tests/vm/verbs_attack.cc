// swrdma-verbs-attack: a hostile verbs peer against a real swrdma-agent (run inside the
// Soft-RoCE VM by tests/vm/guest/agent_pass.sh).
//
// Given one exported region of the agent (address, length and rkey from its key exchange,
// GET /v1/volumes/<vid>) and its rdma_cm port, it connects like a client does (nothing of ours
// remotely accessible) and, each on a fresh connection since every refusal puts the QP in
// error:
//   (a) RDMA READs of 4 KiB inside the region (first and last page) succeed;
//   (b) an RDMA WRITE into the region is refused;
//   (c) atomics (fetch-and-add, compare-and-swap; posted with ibv_post_send directly) are refused;
//   (d) READs at the region's end and across it are refused;
//   (e) READs under forged rkeys (rkey ^ 0x5a5a5a5a, rkey + 1) are refused;
// and finally reads the first page again: the agent still serves and the bytes did not change.
// With --retired the region is one the agent has since replaced (a retired generation): a READ
// under its rkey must be refused, and that is all it checks.
// With --session PREFIX the agent checks read tokens (verbs.grant "token"): a READ on a
// connection never granted must be refused; then a second connection writes the nonce its
// accept carried to PREFIX.nonce, waits for PREFIX.granted (the script granted it with a
// short-lived token: POST /v1/verbs/grant), READs (must succeed) and keeps READing every 100 ms
// until a READ fails: the agent ended the connection when the token expired ("ended_after_s":
// when the first failing READ was posted, after the grant). JSON:
// {"ungranted_refused","granted_read_ok","ended","ended_after_s","ok","statuses"}.
// "Refused" means the responder said no (remote access error or invalid request); a timeout or
// a transport failure is not a refusal.
//
// usage: swrdma-verbs-attack --connect HOST:PORT --address A --length L --rkey K [--json OUT]
//                            [--device NAME] [--timeout-ms MS] [--retired]
//   A, L, K are decimal or 0x-prefixed hex. Progress on stderr; one JSON object on stdout (and in
//   OUT): {"read_ok","write_refused","atomic_refused","out_of_bounds_refused",
//   "forged_rkey_refused","region_unchanged","served_after","ok","statuses",...}; with --retired
//   {"retired_refused","ok","statuses",...}.
// Exit: 0 every check held, 1 one did not (or the peer could not even connect), 2 usage.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "rdma/verbs/completion_queue.h"
#include "rdma/verbs/connection.h"
#include "rdma/verbs/device.h"
#include "rdma/verbs/memory_region.h"
#include "rdma/verbs/verbs_status.h"
#include "tests/vm/verbs_peer.h"

namespace swrdma::rdma::verbs::vmtest {
namespace {

using nlohmann::json;

struct Options {
  std::string host;
  uint16_t port = 0;
  uint64_t address = 0;
  uint64_t length = 0;
  uint32_t rkey = 0;
  std::string json_path;
  std::string device;  // empty: the first device whose port 1 is active
  std::chrono::milliseconds timeout{10000};
  bool retired = false;  // the region's generation is retired: only check that READ is refused
  std::string session;   // --session PREFIX (see above)
};

void Log(const char* format, auto... args) {
  std::fprintf(stderr, "[attack] ");
  std::fprintf(stderr, format, args...);
  std::fprintf(stderr, "\n");
}

// Where things land in our one registered buffer (LOCAL_WRITE only: peers get nothing of ours).
constexpr size_t kReadSlot = 0;       // READs, up to 12 KiB
constexpr size_t kWriteSlot = 16384;  // what the hostile WRITE tries to put there
constexpr size_t kAtomicSlot = 32768;
constexpr size_t kBufferSize = 65536;
constexpr size_t kPage = 4096;

class Peer {
 public:
  static Result<Peer> Open(const Options& opt) {
    SWRDMA_ASSIGN_OR_RETURN(Device device, Device::Open(opt.device));
    SWRDMA_ASSIGN_OR_RETURN(ProtectionDomain pd, ProtectionDomain::Open(device));
    auto buffer = std::make_unique<std::vector<std::byte>>(kBufferSize, std::byte{0});
    std::fill(buffer->begin() + kWriteSlot, buffer->begin() + kAtomicSlot, std::byte{0xee});
    SWRDMA_ASSIGN_OR_RETURN(MemoryRegion mr, MemoryRegion::Open(pd, buffer->data(), buffer->size(),
                                                                Access::kLocalWrite));
    return Peer(std::move(device), std::move(pd), std::move(buffer), std::move(mr), opt);
  }

  // One work request on a connection of its own (and a CQ of its own: a request that timed out
  // cannot complete into the next probe). Returns the completion status; an error when the
  // connection or the post failed, or nothing completed in time.
  Result<ibv_wc_status> Probe(ibv_wr_opcode opcode, uint64_t remote, uint32_t rkey, size_t length,
                              size_t slot) {
    SWRDMA_ASSIGN_OR_RETURN(CompletionQueue cq, CompletionQueue::Open(device_, 16));
    ConnectionOptions co;
    co.remote_access = 0;  // nothing of ours is remotely accessible
    co.responder_resources = 0;
    co.timeout = opt_.timeout;
    auto conn = Connection::Connect(pd_, cq, opt_.host, opt_.port, {}, co);
    if (!conn) return Error(conn.error().WithContext("connecting to the agent"));
    std::span<std::byte> local(buffer_->data() + slot, length);
    return PostAndWait(*conn, cq, local, mr_.lkey(), opcode, remote, rkey, opt_.timeout);
    // conn goes before cq (declared after it).
  }

  // --session: one connection kept open (see the file comment). `status` gets what the first
  // READ and the one that failed ended with.
  struct SessionOutcome {
    bool granted_read_ok = false;
    bool ended = false;
    double ended_after_s = -1;
    std::string first_status, end_status;
  };
  Result<SessionOutcome> Session(uint64_t remote, uint32_t rkey, size_t length,
                                 const std::string& prefix, std::chrono::seconds max_wait) {
    SWRDMA_ASSIGN_OR_RETURN(CompletionQueue cq, CompletionQueue::Open(device_, 16));
    ConnectionOptions co;
    co.remote_access = 0;
    co.responder_resources = 0;
    co.timeout = opt_.timeout;
    auto conn = Connection::Connect(pd_, cq, opt_.host, opt_.port, {}, co);
    if (!conn) return Error(conn.error().WithContext("connecting to the agent"));
    std::string hex;
    for (size_t i = 0; i < std::min<size_t>(16, conn->peer_data().size()); ++i) {
      char two[3];
      std::snprintf(two, sizeof two, "%02x", conn->peer_data()[i]);
      hex += two;
    }
    {
      std::ofstream(prefix + ".nonce.tmp") << hex << "\n";
      std::filesystem::rename(prefix + ".nonce.tmp", prefix + ".nonce");
    }
    Log("session: connected, nonce %s; waiting for %s.granted", hex.c_str(), prefix.c_str());
    using Clock = std::chrono::steady_clock;
    const auto wait_until = Clock::now() + max_wait;
    while (!std::filesystem::exists(prefix + ".granted")) {
      if (Clock::now() > wait_until) return Error(Code::kTimeout, "never granted");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const auto granted_at = Clock::now();
    std::span<std::byte> local(buffer_->data() + kReadSlot, length);
    SessionOutcome out;
    auto st =
        PostAndWait(*conn, cq, local, mr_.lkey(), IBV_WR_RDMA_READ, remote, rkey, opt_.timeout);
    out.first_status = st ? ibv_wc_status_str(*st) : st.error().ToString();
    out.granted_read_ok = st && *st == IBV_WC_SUCCESS;
    if (!out.granted_read_ok) return out;
    while (Clock::now() < granted_at + max_wait) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      // When the READ that fails was posted: the connection ended between the last good one
      // and this (a READ to a disconnected peer may take a timeout to fail).
      const auto posted = Clock::now();
      st = PostAndWait(*conn, cq, local, mr_.lkey(), IBV_WR_RDMA_READ, remote, rkey, opt_.timeout);
      if (st && *st == IBV_WC_SUCCESS) continue;
      out.ended = true;
      out.ended_after_s = std::chrono::duration<double>(posted - granted_at).count();
      out.end_status = st ? ibv_wc_status_str(*st) : st.error().ToString();
      break;
    }
    return out;
  }

  std::span<const std::byte> bytes(size_t slot, size_t length) const {
    return {buffer_->data() + slot, length};
  }
  const std::string& device_name() const { return device_.name(); }

 private:
  Peer(Device device, ProtectionDomain pd, std::unique_ptr<std::vector<std::byte>> buffer,
       MemoryRegion mr, const Options& opt)
      : device_(std::move(device)),
        pd_(std::move(pd)),
        buffer_(std::move(buffer)),
        mr_(std::move(mr)),
        opt_(opt) {}

  Device device_;
  ProtectionDomain pd_;
  std::unique_ptr<std::vector<std::byte>> buffer_;  // stable address for the registration
  MemoryRegion mr_;
  Options opt_;
};

int Run(const Options& opt) {
  json result = opt.retired ? json{{"retired_refused", false}, {"ok", false}}
                            : json{{"read_ok", false},
                                   {"write_refused", false},
                                   {"atomic_refused", false},
                                   {"out_of_bounds_refused", false},
                                   {"forged_rkey_refused", false},
                                   {"region_unchanged", false},
                                   {"served_after", false},
                                   {"ok", false}};
  result["target"] = {{"connect", opt.host + ":" + std::to_string(opt.port)},
                      {"address", opt.address},
                      {"length", opt.length},
                      {"rkey", opt.rkey}};
  json statuses = json::object();
  auto finish = [&](int rc) {
    result["statuses"] = statuses;
    const std::string text = result.dump();
    if (!opt.json_path.empty()) std::ofstream(opt.json_path) << text << "\n";
    std::printf("%s\n", text.c_str());
    return rc;
  };

  auto peer = Peer::Open(opt);
  if (!peer) {
    Log("cannot open the RDMA device: %s", peer.error().ToString().c_str());
    result["error"] = peer.error().ToString();
    return finish(1);
  }
  result["device"] = peer->device_name();
  Log("device %s; target %s:%u, region [0x%llx, +%llu) rkey 0x%x", peer->device_name().c_str(),
      opt.host.c_str(), opt.port, static_cast<unsigned long long>(opt.address),
      static_cast<unsigned long long>(opt.length), opt.rkey);

  // One probe: its status goes into "statuses"; true when it ended as `want` says.
  enum class Want { kSuccess, kRefusal };
  auto probe = [&](const char* name, Want want, ibv_wr_opcode opcode, uint64_t remote,
                   uint32_t rkey, size_t length, size_t slot) {
    auto st = peer->Probe(opcode, remote, rkey, length, slot);
    std::string text = st ? ibv_wc_status_str(*st) : "no completion: " + st.error().ToString();
    statuses[name] = text;
    const bool held = st && (want == Want::kSuccess ? *st == IBV_WC_SUCCESS : Refused(*st));
    Log("%-22s %s %zu bytes at 0x%llx rkey 0x%x -> %s%s", name, OpcodeName(opcode), length,
        static_cast<unsigned long long>(remote), rkey, text.c_str(),
        held ? ""
             : (want == Want::kSuccess ? "  (FAILED: expected success)"
                                       : "  (FAILED: expected a refusal)"));
    return held;
  };

  const uint64_t a = opt.address, l = opt.length;
  const size_t page = static_cast<size_t>(std::min<uint64_t>(kPage, l));
  if (opt.retired) {
    const bool refused =
        probe("read_retired", Want::kRefusal, IBV_WR_RDMA_READ, a, opt.rkey, page, kReadSlot);
    result["retired_refused"] = refused;
    result["ok"] = refused;
    return finish(refused ? 0 : 1);
  }
  if (!opt.session.empty()) {
    result = json{
        {"ungranted_refused", false}, {"granted_read_ok", false}, {"ended", false}, {"ok", false}};
    const bool ungranted =
        probe("read_ungranted", Want::kRefusal, IBV_WR_RDMA_READ, a, opt.rkey, page, kReadSlot);
    result["ungranted_refused"] = ungranted;
    auto outcome = peer->Session(a, opt.rkey, page, opt.session, std::chrono::seconds(90));
    if (!outcome) {
      Log("session: %s", outcome.error().ToString().c_str());
      result["error"] = outcome.error().ToString();
      return finish(1);
    }
    statuses["read_granted"] = outcome->first_status;
    statuses["read_ended"] = outcome->end_status;
    result["granted_read_ok"] = outcome->granted_read_ok;
    result["ended"] = outcome->ended;
    result["ended_after_s"] = outcome->ended_after_s;
    Log("session: granted READ %s; %s", outcome->first_status.c_str(),
        outcome->ended ? ("ended after " + std::to_string(outcome->ended_after_s) +
                          " s: " + outcome->end_status)
                             .c_str()
                       : "never ended");
    const bool ok = ungranted && outcome->granted_read_ok && outcome->ended;
    result["ok"] = ok;
    return finish(ok ? 0 : 1);
  }
  const uint64_t aligned = (a + 7) & ~uint64_t{7};  // atomics need 8-byte alignment

  // (a) Legitimate reads: the first and the last page of the region.
  bool read_ok =
      probe("read_first_page", Want::kSuccess, IBV_WR_RDMA_READ, a, opt.rkey, page, kReadSlot);
  const std::vector<std::byte> first(peer->bytes(kReadSlot, page).begin(),
                                     peer->bytes(kReadSlot, page).end());
  read_ok &= probe("read_last_page", Want::kSuccess, IBV_WR_RDMA_READ, a + l - page, opt.rkey, page,
                   kReadSlot + kPage);
  if (!read_ok && statuses["read_first_page"].get<std::string>().starts_with("no completion")) {
    Log("%s",
        "error: not even a legitimate READ works (is the agent's verbs port right?); the "
        "refusals below prove nothing");
  }
  // (b) WRITE into the export: 64 bytes of 0xee.
  bool write_refused =
      probe("write", Want::kRefusal, IBV_WR_RDMA_WRITE, a, opt.rkey, 64, kWriteSlot);
  write_refused &= probe("write_last_page", Want::kRefusal, IBV_WR_RDMA_WRITE, a + l - page,
                         opt.rkey, 64, kWriteSlot);
  // (c) Atomics.
  bool atomic_refused = probe("fetch_add", Want::kRefusal, IBV_WR_ATOMIC_FETCH_AND_ADD, aligned,
                              opt.rkey, 8, kAtomicSlot);
  atomic_refused &= probe("cmp_swap", Want::kRefusal, IBV_WR_ATOMIC_CMP_AND_SWP, aligned + 64,
                          opt.rkey, 8, kAtomicSlot);
  // (d) Past the end: a page at the end, and a read that starts inside and crosses it by more
  // than a page (a registration rounded up to whole pages must still end before it).
  bool oob_refused =
      probe("read_at_end", Want::kRefusal, IBV_WR_RDMA_READ, a + l, opt.rkey, kPage, kReadSlot);
  oob_refused &= probe("read_across_end", Want::kRefusal, IBV_WR_RDMA_READ, a + l - 16, opt.rkey,
                       16 + 2 * kPage, kReadSlot);
  // (e) Forged keys.
  bool forged_refused = probe("forged_rkey_xor", Want::kRefusal, IBV_WR_RDMA_READ, a,
                              opt.rkey ^ 0x5a5a5a5au, 64, kReadSlot);
  forged_refused &=
      probe("forged_rkey_plus_1", Want::kRefusal, IBV_WR_RDMA_READ, a, opt.rkey + 1, 64, kReadSlot);
  // After all of it: the agent serves a well-behaved READ, with the same bytes.
  const bool served_after = probe("read_after", Want::kSuccess, IBV_WR_RDMA_READ, a, opt.rkey, page,
                                  kReadSlot + 2 * kPage);
  const auto again = peer->bytes(kReadSlot + 2 * kPage, page);
  const bool unchanged =
      read_ok && served_after && std::equal(first.begin(), first.end(), again.begin());
  Log("the region's first page after the attack: %s",
      !served_after ? "could not be read" : (unchanged ? "unchanged" : "CHANGED"));

  result["read_ok"] = read_ok;
  result["write_refused"] = write_refused;
  result["atomic_refused"] = atomic_refused;
  result["out_of_bounds_refused"] = oob_refused;
  result["forged_rkey_refused"] = forged_refused;
  result["region_unchanged"] = unchanged;
  result["served_after"] = served_after;
  const bool ok = read_ok && write_refused && atomic_refused && oob_refused && forged_refused &&
                  unchanged && served_after;
  result["ok"] = ok;
  Log("%s", ok ? "every hostile request was refused; the agent still serves"
               : "FAILED: see the lines marked FAILED above");
  return finish(ok ? 0 : 1);
}

std::optional<uint64_t> Number(const std::string& text) {
  try {
    size_t used = 0;
    const uint64_t v = std::stoull(text, &used, 0);
    if (used != text.size()) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace
}  // namespace swrdma::rdma::verbs::vmtest

int main(int argc, char** argv) {
  using swrdma::rdma::verbs::vmtest::Number;
  swrdma::rdma::verbs::vmtest::Options opt;
  bool have_address = false, have_length = false, have_rkey = false;
  auto usage = [&](const std::string& why) {
    std::fprintf(stderr,
                 "%s\nusage: %s --connect HOST:PORT --address A --length L --rkey K [--json OUT] "
                 "[--device NAME] [--timeout-ms MS] [--retired | --session PREFIX]\n",
                 why.c_str(), argv[0]);
    return 2;
  };
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--retired") {
      opt.retired = true;
      --i;  // no value
      continue;
    }
    if (i + 1 >= argc) return usage(flag + " needs a value");
    const std::string value = argv[i + 1];
    const auto n = Number(value);
    if (flag == "--connect") {
      const size_t colon = value.rfind(':');
      const auto port = colon == std::string::npos ? std::nullopt : Number(value.substr(colon + 1));
      if (!port || *port == 0 || *port > 65535) return usage("--connect: expected HOST:PORT");
      opt.host = value.substr(0, colon);
      opt.port = static_cast<uint16_t>(*port);
    } else if (flag == "--address" && n) {
      opt.address = *n;
      have_address = true;
    } else if (flag == "--length" && n && *n > 0) {
      opt.length = *n;
      have_length = true;
    } else if (flag == "--rkey" && n && *n <= 0xffffffffu) {
      opt.rkey = static_cast<uint32_t>(*n);
      have_rkey = true;
    } else if (flag == "--session") {
      opt.session = value;
    } else if (flag == "--json") {
      opt.json_path = value;
    } else if (flag == "--device") {
      opt.device = value;
    } else if (flag == "--timeout-ms" && n && *n > 0) {
      opt.timeout = std::chrono::milliseconds(*n);
    } else {
      return usage("bad flag or value: " + flag + " " + value);
    }
  }
  if (opt.host.empty() || !have_address || !have_length || !have_rkey) {
    return usage("--connect, --address, --length and --rkey are required");
  }
  return swrdma::rdma::verbs::vmtest::Run(opt);
}
