#include "agent/verbs_exporter.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "protocol/thread_name.h"
#include "rdma/verbs/verbs_status.h"

namespace swrdma::agent {

namespace verbs = rdma::verbs;

Result<OdpMode> ParseOdpMode(std::string_view text) {
  if (text == "auto") return OdpMode::kAuto;
  if (text == "on") return OdpMode::kOn;
  if (text == "off") return OdpMode::kOff;
  return Error(Code::kInvalidArgument, fmt::format("--verbs-odp '{}': use auto, on or off", text));
}

namespace {

// Whether exports page on demand: what the device offers and what --verbs-odp asks.
Result<bool> ChooseOnDemand(const verbs::Device& device, OdpMode mode) {
  if (mode == OdpMode::kOff) return false;
  auto caps = device.QueryCaps();
  const bool offered = caps && caps->odp_rc_read;
  if (offered && caps->soft_roce) {
    if (mode == OdpMode::kAuto) {
      spdlog::warn(
          "verbs: {} (Soft-RoCE) offers on-demand paging, but its ODP READ returns bytes from "
          "the wrong place for READs that start inside a page (measured on Linux 6.16; clients "
          "would refuse every such read): registering pinned (--verbs-odp on forces ODP)",
          device.name());
      return false;
    }
    spdlog::warn(
        "verbs: --verbs-odp on with {} (Soft-RoCE), whose ODP READ returns wrong bytes "
        "for READs that start inside a page (Linux 6.16): clients will refuse them",
        device.name());
  }
  if (mode == OdpMode::kOn && !offered) {
    return Error(Code::kUnsupported,
                 fmt::format("--verbs-odp on: {} offers no on-demand paging for RC RDMA READ "
                             "({}); use --verbs-odp auto to pin registrations instead",
                             device.name(),
                             caps ? (caps->odp ? "ODP, but not for RC READ" : "no ODP at all")
                                  : caps.error().ToString()));
  }
  return offered;
}

}  // namespace

Result<std::unique_ptr<VerbsExporter>> VerbsExporter::Start(const VerbsExporterOptions& options) {
  SWRDMA_ASSIGN_OR_RETURN(verbs::Device device, verbs::Device::Open(options.device));
  SWRDMA_ASSIGN_OR_RETURN(verbs::ProtectionDomain pd, verbs::ProtectionDomain::Open(device));
  SWRDMA_ASSIGN_OR_RETURN(verbs::CompletionQueue cq, verbs::CompletionQueue::Open(device, 16));
  SWRDMA_ASSIGN_OR_RETURN(bool on_demand, ChooseOnDemand(device, options.odp));
  auto chosen = verbs::ChooseExportMapping(
      pd, options.probe_dir.empty() ? std::filesystem::temp_directory_path() : options.probe_dir,
      on_demand);
  if (!chosen && on_demand && options.odp == OdpMode::kAuto) {
    // A device may announce ODP and still refuse it for file mappings: pin instead.
    spdlog::warn(
        "verbs: {} offers on-demand paging but an ODP registration of a file mapping "
        "failed ({}); registering pinned (--verbs-odp off says so up front)",
        device.name(), chosen.error().ToString());
    on_demand = false;
    chosen = verbs::ChooseExportMapping(
        pd, options.probe_dir.empty() ? std::filesystem::temp_directory_path() : options.probe_dir,
        false);
  }
  if (!chosen) return Error(chosen.error());
  const verbs::ExportMapping mapping = *chosen;
  auto listener = verbs::Listener::Open(options.address, options.port);
  if (!listener) {
    return Error(listener.error().WithContext(
        fmt::format("verbs: listening on {} port {} (another agent there? use --verbs-port)",
                    options.address, options.port)));
  }
  std::unique_ptr<VerbsExporter> exporter(new VerbsExporter(std::move(device), std::move(pd),
                                                            std::move(cq), std::move(*listener),
                                                            mapping, on_demand, options));
  exporter->thread_ = std::thread([e = exporter.get()] {
    NameThisThread("sw-verbs");
    e->AcceptLoop();
  });
  if (exporter->options_.push) {
    exporter->push_thread_ = std::thread([e = exporter.get()] {
      NameThisThread("sw-verbs-push");
      e->PushLoop();
    });
  }
  return exporter;
}

VerbsExporter::VerbsExporter(verbs::Device device, verbs::ProtectionDomain pd,
                             verbs::CompletionQueue cq, verbs::Listener listener,
                             verbs::ExportMapping mapping, bool on_demand,
                             VerbsExporterOptions options)
    : options_(std::move(options)),
      device_(std::move(device)),
      pd_(std::move(pd)),
      cq_(std::move(cq)),
      listener_(std::move(listener)),
      mapping_(mapping),
      registrar_(pd_, verbs::RegistrarRole::kExporter, on_demand) {}

VerbsExporter::~VerbsExporter() {
  stop_ = true;
  push_cv_.notify_all();
  if (push_thread_.joinable()) push_thread_.join();  // ends every push still in flight
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  clients_.clear();  // rdma_disconnect each: the clients see their QPs fail and reconnect
}

size_t VerbsExporter::connections() const {
  std::lock_guard lock(mu_);
  return clients_.size();
}

nlohmann::json VerbsExporter::Info() const {
  return {{"device", device_.name()},
          {"port", port()},
          {"address", options_.address},
          {"mapping", std::string(verbs::ExportMappingName(mapping_))},
          {"access", on_demand() ? "REMOTE_READ|ON_DEMAND" : "REMOTE_READ"},
          // on-demand: the device faults pages in as peers read them, nothing is pinned;
          // pinned: every registered page is locked in RAM (--max-pinned-bytes bounds them).
          {"paging", on_demand() ? "on-demand" : "pinned"},
          {"connections", connections()},
          // token: a connection may READ only once its client showed a read token
          // (POST /v1/verbs/grant), until that token expires; open: from connect to disconnect.
          {"grant", options_.require_grant ? "token" : "open"},
          // region: clients READ under keys; push: the agent WRITEs checked records into the
          // landing buffers clients offer over the TCP read port, clients get no key.
          {"mode", options_.push ? "push" : "region"},
          {"pushes", pushes()},
          {"pushed_bytes", pushed_bytes()},
          {"push_failures", push_failures()},
          // pushes whose writes are in flight (or queued behind another on their connection)
          {"pushes_in_flight", pushes_in_flight()},
          {"grants", grants()},
          {"revocations", revocations()},
          {"accepted", accepted()}};
}

void VerbsExporter::Sweep() {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  for (auto it = clients_.begin(); it != clients_.end();) {
    Client& c = **it;
    auto gone = c.connection.PeerGone();
    if (!gone || *gone || c.broken) {  // their QPs hold device resources until destroyed
      it = clients_.erase(it);
    } else if (now >= c.deadline) {
      // The token it was granted under expired (or it never showed one): disconnected, its
      // READs in flight fail, and a new connection needs a new grant.
      spdlog::info("verbs: ending a client's connection: {}",
                   c.granted ? "its read token expired" : "no read token shown in time");
      ++revocations_;
      it = clients_.erase(it);
    } else {
      ++it;
    }
  }
}

void VerbsExporter::AcceptLoop() {
  verbs::ConnectionOptions co;
  // The responder refuses WRITE and atomics always; with require_grant READ too, until a grant;
  // in push mode everything, for good.
  co.remote_access = options_.require_grant || options_.push ? 0 : IBV_ACCESS_REMOTE_READ;
  co.max_send_wr = options_.push ? kPushDepth : 1;  // region: the agent posts nothing
  co.initiator_depth = 0;  // and issues no READs: it serves them, or writes
  co.timeout = std::chrono::milliseconds(2000);
  while (!stop_) {
    Sweep();
    pollfd pfd{.fd = listener_.fd(), .events = POLLIN, .revents = 0};
    if (poll(&pfd, 1, 200) <= 0) continue;  // also wakes up to see stop_ and sweep
    VerbsNonce nonce{};
    if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) {
      spdlog::error("verbs: no random bytes for a connection nonce (RAND_bytes); refusing");
      continue;
    }
    // Push: each connection polls its own CQ (its writes' completions, nobody else's).
    std::optional<verbs::CompletionQueue> own_cq;
    if (options_.push) {
      auto cq = verbs::CompletionQueue::Open(device_, static_cast<int>(kPushDepth) + 1);
      if (!cq) {
        spdlog::warn("verbs: no completion queue for a push connection: {}", cq.error().ToString());
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      own_cq.emplace(std::move(*cq));
    }
    auto conn = listener_.Accept(pd_, own_cq ? *own_cq : cq_, nonce, co);
    if (!conn) {
      // One peer's failed request (rejected, timed out, bad private data) ends only its own.
      spdlog::warn("verbs: a connection request failed: {}", conn.error().ToString());
      continue;
    }
    std::lock_guard lock(mu_);
    if (clients_.size() >= options_.max_connections) {
      spdlog::warn("verbs: {} clients connected (--max-connections): dropping a new one",
                   clients_.size());
      continue;  // destroyed here: the client's QP fails at once
    }
    auto c = std::make_shared<Client>(std::move(own_cq), std::move(*conn), nonce);
    if (options_.require_grant) {
      c->deadline = std::chrono::steady_clock::now() + options_.ungranted_timeout;
    } else {
      c->granted = true;
    }
    clients_.push_back(std::move(c));
    ++accepted_;
  }
}

Result<std::optional<std::chrono::system_clock::time_point>> VerbsExporter::Grant(
    const VerbsNonce& nonce, std::optional<int64_t> token_exp) {
  if (!options_.require_grant) return std::optional<std::chrono::system_clock::time_point>();
  const auto now = std::chrono::system_clock::now();
  auto until = now + options_.max_grant;
  if (token_exp) {
    until =
        std::min(until, std::chrono::system_clock::time_point(std::chrono::seconds(*token_exp)));
  }
  if (until <= now) return Error(Code::kPermissionDenied, "the read token has expired");
  std::lock_guard lock(mu_);
  for (const auto& client : clients_) {
    Client& c = *client;
    // Constant time per candidate: the nonce is the connection's only credential here.
    if (CRYPTO_memcmp(c.nonce.data(), nonce.data(), nonce.size()) != 0) continue;
    const bool first = !c.granted;
    if (first) {
      if (Status s = c.connection.SetRemoteAccess(IBV_ACCESS_REMOTE_READ); !s.ok()) {
        return Error(s.WithContext("opening the connection for RDMA READ"));
      }
      c.granted = true;
    }
    // A later grant may extend, never shorten, what an earlier token allowed.
    const auto deadline =
        std::chrono::steady_clock::now() +
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(until - now);
    if (first || deadline > c.deadline) c.deadline = deadline;
    ++grants_;
    return std::optional(now + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                   c.deadline - std::chrono::steady_clock::now()));
  }
  return Error(Code::kNotFound,
               "no verbs connection with that nonce (it ended: connect again and grant anew)");
}

Result<std::unique_ptr<VerbsExporter>> StartAgentVerbs(const AgentConfig& config, bool auth_enabled,
                                                       bool verbs_named, ExportMode& export_mode) {
  std::unique_ptr<VerbsExporter> verbs;
  if (config.verbs_port != "off") {
    VerbsExporterOptions vx;
    vx.device = config.verbs_device;
    vx.address = config.verbs_address;
    vx.port = static_cast<uint16_t>(std::stoul(config.verbs_port));
    // The index directory is always writable (the volume directories may not be: the unit
    // keeps them read-only); what a kernel pins depends on the kernel, not the file system.
    vx.probe_dir = config.index_dir;
    std::error_code mkdir_ec;
    std::filesystem::create_directories(vx.probe_dir, mkdir_ec);
    vx.max_connections = config.max_connections;
    vx.odp = *ParseOdpMode(config.verbs_odp);  // checked when parsing flags
    // With read tokens (--region-with-tokens) a client's READ access lasts as long as the token
    // it showed: POST /v1/verbs/grant opens its connection, expiry ends it.
    // Push (--exposure push): the agent checks every fid and writes the records; nothing of it
    // is remotely readable, so read tokens need no --region-with-tokens and no grants.
    vx.push = config.exposure.value_or("checked") == "push";
    vx.require_grant = auth_enabled && !vx.push;
    if (auth_enabled && !vx.push && !config.region_with_tokens) {
      // An rkey covers a whole volume, a token one fid (docs/security.md).
      spdlog::warn(
          "verbs: off, read tokens are on and a verbs key would open whole volumes to any token "
          "holder; every read stays checked (add --region-with-tokens if every client is trusted)");
    } else if (auto started = VerbsExporter::Start(vx); started) {
      verbs = std::move(*started);
    } else if (verbs_named && config.require_transports) {
      return Error(started.error().WithContext("verbs (--require-transports names verbs)"));
    } else if (started.error().code() == Code::kRdmaNoDevice) {
      spdlog::info("verbs: off ({}); reads are checked reads", started.error().message());
    } else {
      spdlog::warn("verbs: off: {}; reads are checked reads", started.error().ToString());
    }
  } else if (verbs_named && config.require_transports) {
    return Error(Code::kInvalidArgument, "--transports names verbs but --verbs-port is off");
  }
  if (verbs && verbs->mapping() == rdma::verbs::ExportMapping::kWritableSharedNeverWritten) {
    // This kernel (6.1) pins no read-only shared file mapping: the exports must be mapped
    // writable (never written), which needs the .dat files open for writing.
    for (const auto& dir : config.dirs) {
      if (::access(dir.c_str(), W_OK) != 0) {
        spdlog::warn(
            "verbs: off: this kernel pins no read-only file mapping for RDMA (Linux 6.1 does not), "
            "so exports would be mapped writable, and {} is not writable for the agent; every read "
            "stays checked (make the volume directories writable for the agent, e.g. "
            "ReadWritePaths= in the unit, or run a kernel that pins read-only mappings: 6.12 does)",
            dir.string());
        verbs.reset();
        break;
      }
    }
  }
  if (verbs) {
    spdlog::info(
        "verbs: exporting on {} (rdma_cm port {}): registrations REMOTE_READ only, {} file "
        "mappings, {}; {}",
        verbs->device_name(), verbs->port(), rdma::verbs::ExportMappingName(verbs->mapping()),
        verbs->on_demand()
            ? "paged on demand (ODP: nothing pinned, --max-pinned-bytes does not apply)"
            : "pinned (the device offers no on-demand paging for RC READ, or --verbs-odp off)",
        verbs->push() ? "push: clients read nothing themselves, the agent checks every fid and "
                        "RDMA WRITEs the records into their landing buffers"
                      : "clients read one-sided");
    if (verbs->mapping() == rdma::verbs::ExportMapping::kWritableSharedNeverWritten &&
        export_mode == ExportMode::kMap) {
      // This kernel pins no read-only shared file mapping (6.1): the writable one, never
      // written by the agent, and the NIC refuses remote writes (REMOTE_READ-only keys).
      export_mode = ExportMode::kMapWritable;
    }
  }

  return verbs;
}

}  // namespace swrdma::agent
