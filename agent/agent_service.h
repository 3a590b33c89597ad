// The agent's HTTP API: routes requests to the volume set. Thread-safe; no I/O of its own beyond
// reading exported (mapped) volume bytes for the HTTP fallback.
//
//   GET  /healthz, /readyz, /metrics (Prometheus text)
//   GET  /v1/info, /v1/volumes, /v1/volumes/<vid>    msgpack, or JSON (Accept: application/json)
//   GET  /v1/volumes/<vid>/sample?n=N[&seed=S]       up to N random live fids (benchmarks)
//   POST /v1/lookup                                  body msgpack or JSON (by Content-Type)
//   POST /v1/push                                    501: push needs an RDMA device (verbs)
//   POST /v1/verbs/grant?connection=<hex nonce>      opens a verbs connection for RDMA READ
//        until the read token it carries expires (Authorization: Bearer; any fid's token)
//
// With a read key (ReadAuthorizer enabled) every fid needs a SeaweedFS read token; failures are
// 401 {"error":"wrong jwt"} with nothing else. Volume rkeys leave the agent only in "region"
// exposure, which needs keys a NIC enforces (never on tcp or shared memory: there every read is a
// checked read, agent/read_server.h); in "region" mode with a key, /v1/volumes/<vid> needs a token
// for a fid of that volume.
//   GET  /<vid>,<fid>[.ext]  /<vid>/<fid>[.ext]  /<vid>/<fid>/<name>   volume-server style read
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent_metrics.h"
#include "agent/read_auth.h"
#include "agent/read_server.h"
#include "agent/volume_set.h"
#include "http/http_server.h"
#include "protocol/messages.h"

namespace swrdma::agent {

class LocalServer;

struct ServiceOptions {
  size_t max_lookup_batch = 10'000;  // fids in one /v1/lookup
  size_t max_sample = 10'000;        // fids in one /v1/volumes/<vid>/sample answer
  std::string agent_version;
  std::vector<uint8_t> worker_address;
  std::vector<std::string> transports;
  // /v1/info "shm_peer_failure": the agent's UCX context lets shared memory take peer error
  // handling (rdma::UcxContext::shm_peer_failure), so clients may ask for it (see client.cc).
  bool shm_peer_failure = false;
  // "checked": no rkeys leave the agent, every read is checked (read_server.h); "region": volume
  // rkeys are handed out (only where a NIC enforces them). See docs/security.md.
  std::string exposure = "checked";
  // /v1/info "exposures": what is in force per transport (name -> exposure).
  std::map<std::string, std::string> exposures;
  const ReadAuthorizer* auth = nullptr;  // null or disabled: no tokens needed
  // Checked reads on the worker (agent/read_server.h): /v1/info "checked_reads", /metrics.
  const ReadServer* reads = nullptr;
  // Checked reads over plain TCP (agent/tcp_read_server.h): /v1/info "tcp_read": {"port": N}.
  uint16_t tcp_read_port = 0;  // 0: not served
  // Same-host reads (agent/local_server.h): /v1/info "local_socket"/"local_instance", /metrics.
  const LocalServer* local = nullptr;
  // One-sided RDMA READ (agent/verbs_exporter.h): /v1/info "verbs"; unset: no verbs.
  std::function<nlohmann::json()> verbs_info;
  // POST /v1/verbs/grant (VerbsExporter::Grant): opens the connection a nonce names for READ
  // until the token's expiry (seconds since the epoch; none: no exp claim or no read key).
  // The grant's end in ms since the epoch; nullopt: open with no end.
  std::function<Result<std::optional<int64_t>>(std::span<const uint8_t> nonce,
                                               std::optional<int64_t> token_exp)>
      verbs_grant;
};

class AgentService {
 public:
  AgentService(const VolumeSet& volumes, ServiceOptions options);

  HttpResponse Handle(const HttpRequest& request) const;

  // /readyz answers 200 once this is set (index loaded, volumes exported).
  void SetReady(bool ready) { ready_.store(ready); }

  // The metrics served on /metrics, for what main feeds in (scans, devices, HTTP server stats).
  AgentMetrics& metrics() const { return metrics_; }

 private:
  HttpResponse Info(const HttpRequest& req) const;
  HttpResponse Volumes(const HttpRequest& req) const;
  HttpResponse Volume(const HttpRequest& req, std::string_view vid) const;
  HttpResponse Lookup(const HttpRequest& req) const;
  HttpResponse Sample(const HttpRequest& req, std::string_view vid) const;
  HttpResponse VerbsGrant(const HttpRequest& req) const;
  bool auth_on() const { return options_.auth != nullptr && options_.auth->enabled(); }
  // Ok when every fid is covered by its token: jwts empty (the request's own token for all),
  // one (for all) or one per fid. kInvalidArgument for a bad count, kPermissionDenied otherwise.
  Status Authorize(const HttpRequest& req, std::span<const std::string> fids,
                   std::span<const std::string> jwts) const;

  const VolumeSet& volumes_;
  ServiceOptions options_;
  // Thread-safe (prometheus-cpp metrics are atomics); mutable: counting is not a state change.
  mutable AgentMetrics metrics_;
  std::atomic<bool> ready_{false};
};

// The volume server's GET /<fid> semantics over an exported volume (see http_fallback.cc).
// With `auth` enabled the request's token must cover the fid (401 {"error":"wrong jwt"}).
HttpResponse ServeNeedleOverHttp(const VolumeSet& volumes, const HttpRequest& request,
                                 const ReadAuthorizer* auth = nullptr);

}  // namespace swrdma::agent
