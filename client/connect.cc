// Client::Impl's connection to one agent (client/client_impl.h): /v1/info, then the best path it
// offers this client: same-host descriptors, verbs (one-sided RDMA READ), UCX shared memory or the
// agent's TCP read port (checked reads), else the HTTP fallback when asked for; and reconnection.
#include <algorithm>
#include <thread>

#include <fmt/format.h>

#include "client/client_impl.h"
#include "client/client_internal.h"
#include "client/volume_key.h"
#include "protocol/wire.h"
#include "rdma/transport_list.h"

namespace swrdma::client {
namespace {

// /v1/info "tcp_read": {"port": N}; 0 when absent (older agents) or malformed.
uint16_t TcpReadPort(const nlohmann::json& info) {
  const auto t = info.find("tcp_read");
  if (t == info.end() || !t->is_object()) return 0;
  const auto p = t->find("port");
  if (p == t->end() || !p->is_number_unsigned()) return 0;
  const auto port = p->get<uint64_t>();
  return port <= 65535 ? static_cast<uint16_t>(port) : 0;
}

// The client's UCX_TLS names tcp and nothing else (no shared memory, no RDMA device).
bool AsksTcpOnly(const std::optional<std::string>& transports) {
  if (!transports || transports->empty()) return false;
  std::string_view rest = *transports;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    if (rest.substr(0, comma) != "tcp") return false;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return true;
}

// --transports without "verbs" (ours, not UCX's); nullopt when nothing else is named.
std::optional<std::string> UcxTransports(const std::optional<std::string>& named) {
  return rdma::WithoutTransport(named, "verbs");
}

bool NamesVerbs(const std::optional<std::string>& named) {
  return named && UcxTransports(named) != named;
}

// UCX reaches the agent over shared memory (the same host): checked reads stay on UCX.
bool SharesMemory(const rdma::UcxEndpoint& endpoint) {
  auto t = endpoint.Transports();
  if (!t) return false;
  for (const auto& name : t->names()) {
    if (name == "posix" || name == "sysv" || name == "cma" || name == "xpmem" || name == "knem") {
      return true;
    }
  }
  return false;
}

}  // namespace
using namespace detail;

Status Client::Impl::ConnectUcx() {
  // Keys and endpoint belong to the worker, the worker to the context: release in that order.
  keys_.clear();
  checked_.reset();
  endpoint_.reset();
  worker_.reset();
  // Peer error handling over shared memory only with an agent that has it on too (an older agent
  // silently drops such a client's requests). Then the agent's UCX keepalive releases what it
  // maps for this client once the process is gone (docs/read-path.md, "Shared memory").
  if (context_ && context_->shm_peer_failure() != agent_shm_peer_failure_) {
    pool_.reset();  // its registrations belong to the context
    context_.reset();
  }
  if (!context_) {
    rdma::UcxContextOptions co;
    co.transports = UcxTransports(options_.transports);
    co.shm_peer_failure = agent_shm_peer_failure_;
    auto ctx = rdma::UcxContext::Create(co);
    if (!ctx) return ctx.error();
    context_.emplace(std::move(*ctx));
  }
  auto worker = rdma::UcxWorker::Create(*context_);
  if (!worker) return worker.error();
  worker_.emplace(std::move(*worker));
  // Agents before checked reads served emulated gets and puts, which this client no longer
  // does (their UCX handlers serve any address: docs/security.md).
  if (!info_checked_reads_) {
    return Status(Code::kUnsupported,
                  fmt::format("the agent at {} (version {}) does not serve checked reads: "
                              "upgrade it to this client's version",
                              options_.agent_url, info_.agent_version));
  }
  rdma::UcxEndpointOptions eo;
  eo.connect_timeout = options_.timeout;
  // Without shm_peer_failure UCX refuses peer mode on shared memory (and restricts a mixed
  // endpoint to tcp): a client asking for shared memory only gets it without (UCX would log an
  // error for the refused attempt).
  const auto& t = options_.transports;
  if (!context_->shm_peer_failure() && t && t->find("tcp") == std::string::npos &&
      t->find("rc") == std::string::npos && t->find("dc") == std::string::npos &&
      t->find("ud") == std::string::npos) {
    eo.error_handling = rdma::PeerErrorHandling::kNone;
  }
  auto ep = rdma::UcxEndpoint::Connect(*worker_, info_.worker_address, eo);
  if (!ep) return ep.error();
  endpoint_.emplace(std::move(*ep));
  return Status::Ok();
}

Status Client::Impl::ConnectAgent() {
  SWRDMA_ASSIGN_OR_RETURN(
      auto tree,
      DecodeReply(http_->Request("GET", "/v1/info", {}, {}, kMsgpackMime), "GET /v1/info"));
  SWRDMA_ASSIGN_OR_RETURN(info_, AgentInfoFromJson(tree));
  const auto shm = tree.find("shm_peer_failure");  // absent from older agents
  agent_shm_peer_failure_ = shm != tree.end() && shm->is_boolean() && shm->get<bool>();
  const auto checked = tree.find("checked_reads");  // likewise
  info_checked_reads_ = checked != tree.end() && checked->is_boolean() && checked->get<bool>();
  ClearLookups();
  keys_.clear();
  tcp_checked_.reset();  // before the verbs link: it may hold that link's landing buffers
  verbs_.reset();
  use_tcp_reads_ = false;
  tcp_read_port_ = TcpReadPort(tree);
  // Same host as the agent (its socket answers as this agent): no UCX needed.
  const auto sock = tree.find("local_socket");
  const auto inst = tree.find("local_instance");
  Status local = ConnectLocal(
      sock != tree.end() && sock->is_string() ? sock->get<std::string>() : std::string(),
      inst != tree.end() && inst->is_number_unsigned() ? inst->get<uint64_t>() : 0);
  if (local.ok()) return local;
  if (local_only_ && options_.fallback != FallbackMode::kHttp) {
    return local.WithContext(
        fmt::format("--transports local: no same-host path to {}", options_.agent_url));
  }
  // One-sided RDMA READ where the agent exports over verbs and this host has a device.
  Status verbs = ConnectVerbs(tree);
  if (verbs.ok()) return verbs;
  verbs_note_ = verbs.message();
  if (NamesVerbs(options_.transports) && !UcxTransports(options_.transports)) {
    return verbs.WithContext(
        fmt::format("--transports verbs: no verbs path to {}", options_.agent_url));
  }
  // Checked reads over the agent's TCP port (UCX tcp cannot face a hostile peer, so the agent
  // serves other hosts there): at once when the client asked for tcp only; else when UCX finds
  // no shared memory to the agent (another host) or cannot connect. Shared memory stays UCX.
  const bool tcp_offered = !local_only_ && info_checked_reads_ && tcp_read_port_ != 0;
  if (tcp_offered && AsksTcpOnly(UcxTransports(options_.transports))) {
    keys_.clear();
    checked_.reset();
    endpoint_.reset();
    worker_.reset();
    use_tcp_reads_ = true;
    return Status::Ok();
  }
  Status ucx = local_only_ ? local : ConnectUcx();
  // A client that named transports without tcp (rc, shared memory) does not get it instead.
  const bool tcp_allowed =
      !options_.transports || options_.transports->find("tcp") != std::string::npos;
  if (tcp_offered && tcp_allowed && (!ucx.ok() || !endpoint_ || !SharesMemory(*endpoint_))) {
    use_tcp_reads_ = true;
  }
  if (!ucx.ok()) {
    keys_.clear();
    checked_.reset();
    endpoint_.reset();
    worker_.reset();
    pool_.reset();  // its registrations belong to the context
    context_.reset();
    if (options_.fallback != FallbackMode::kHttp && !use_tcp_reads_) {
      return ucx.WithContext(
          fmt::format("connecting UCX to the agent at {} (try --transports, or --fallback http)",
                      options_.agent_url));
    }
  }
  return Status::Ok();
}

Status Client::Impl::ConnectVerbs(const nlohmann::json& info) {
  if (options_.transports && !NamesVerbs(options_.transports)) {
    return Status(Code::kUnsupported, "verbs not among --transports");
  }
  const auto v = info.find("verbs");
  if (v == info.end() || !v->is_object()) {
    return Status(Code::kUnsupported, "the agent offers no verbs export");
  }
  const auto port = v->find("port");
  if (port == v->end() || !port->is_number_unsigned() || port->get<uint64_t>() == 0 ||
      port->get<uint64_t>() > 65535) {
    return Status(Code::kCorruption, "/v1/info \"verbs\" has no valid \"port\"");
  }
  VerbsLinkOptions vo;
  vo.device = options_.verbs_device;
  vo.host = http_->url().host;
  vo.port = static_cast<uint16_t>(port->get<uint64_t>());
  vo.timeout = options_.timeout;
  vo.window = std::max<size_t>(1, options_.max_inflight);
  vo.spin = options_.verbs_spin;
  vo.pool.hugepages = options_.hugepages;
  const auto grant = v->find("grant");
  vo.grant_required =
      grant != v->end() && grant->is_string() && grant->get<std::string>() == "token";
  // Push: the agent writes checked records into our landing buffers; the requests (and any
  // record it does not push) go over its TCP read port.
  const auto mode = v->find("mode");
  vo.push = mode != v->end() && mode->is_string() && mode->get<std::string>() == "push";
  if (vo.push && (!info_checked_reads_ || tcp_read_port_ == 0)) {
    return Status(Code::kUnsupported,
                  "the agent pushes over verbs but offers no TCP read port for the requests "
                  "(give the agent a --read-port)");
  }
  if (vo.push) vo.grant_required = false;  // nothing of the agent is readable: no grants
  SWRDMA_ASSIGN_OR_RETURN(verbs_, VerbsLink::Connect(vo));
  use_tcp_reads_ = vo.push;
  // Nothing else is needed: reads go out as RDMA READs under the keys /v1/volumes hands out.
  checked_.reset();
  endpoint_.reset();
  worker_.reset();
  verbs_note_.clear();
  return Status::Ok();
}

Status Client::Impl::EnsureVerbsGrant(std::string_view jwt) {
  if (!verbs_) return Status::Ok();
  const auto now = std::chrono::steady_clock::now();
  // A connection the agent ended (grant expired, agent restarted): reconnect now rather than
  // wait for READs that cannot complete.
  if (verbs_->PeerGone(now)) {
    return Status(Code::kUnavailable, "the agent ended the verbs connection; connecting again");
  }
  if (!verbs_->NeedsGrant(now)) return Status::Ok();
  if (jwt.empty()) {
    return Status(Code::kPermissionDenied,
                  "the agent has a read key: its verbs connections READ only under a read token "
                  "(give one: --jwt, ReadOptions::jwt)");
  }
  auto reply =
      http_->Request("POST", fmt::format("/v1/verbs/grant?connection={}", verbs_->nonce_hex()), {},
                     {}, kMsgpackMime, {{"Authorization", fmt::format("Bearer {}", jwt)}});
  auto tree = DecodeReply(reply, "POST /v1/verbs/grant");
  if (!tree) {
    // 404: the agent no longer knows this connection (it ended it): connect again.
    if (tree.error().code() == Code::kNotFound) {
      return Status(Code::kUnavailable, tree.error().message());
    }
    return tree.error();
  }
  const auto until_ms = tree->find("until_ms");
  if (until_ms == tree->end() || until_ms->is_null()) {
    verbs_->Granted(now, std::chrono::steady_clock::time_point::max());
    return Status::Ok();
  }
  if (!until_ms->is_number_integer()) {
    return Status(Code::kCorruption, "POST /v1/verbs/grant: \"until_ms\" is not a number");
  }
  const auto left = std::chrono::milliseconds(until_ms->get<int64_t>()) -
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch());
  verbs_->Granted(now, now + std::max(left, std::chrono::milliseconds(0)));
  return Status::Ok();
}

Status Client::Impl::Reconnect(const Status& why) {
  // The agent restarted or the connection broke: new worker address, new rkeys. Bounded retries
  // with exponential back-off, within the client's timeout.
  ++stats_.reconnects;
  auto delay = std::chrono::milliseconds(50);
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  Status last = why;
  for (int attempt = 0; attempt < options_.reconnect_attempts; ++attempt) {
    last = ConnectAgent();
    if (last.ok()) return last;
    if (std::chrono::steady_clock::now() + delay >= deadline) break;
    std::this_thread::sleep_for(delay);
    delay *= 2;
  }
  return last.WithContext(
      fmt::format("reconnecting to the agent at {} after: {}", options_.agent_url, why.message()));
}

}  // namespace swrdma::client
