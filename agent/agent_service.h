// The agent's HTTP API: routes requests to the volume set. Thread-safe; no I/O of its own beyond
// reading exported (mapped) volume bytes for the HTTP fallback.
//
//   GET  /healthz, /readyz, /metrics (Prometheus text)
//   GET  /v1/info, /v1/volumes, /v1/volumes/<vid>    msgpack, or JSON (Accept: application/json)
//   GET  /v1/volumes/<vid>/sample?n=N[&seed=S]       up to N random live fids (benchmarks)
//   POST /v1/lookup                                  body msgpack or JSON (by Content-Type)
//   GET  /<vid>,<fid>[.ext]  /<vid>/<fid>[.ext]  /<vid>/<fid>/<name>   volume-server style read
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "agent/agent_metrics.h"
#include "agent/http_server.h"
#include "agent/volume_set.h"
#include "protocol/messages.h"

namespace swrdma::agent {

struct ServiceOptions {
  size_t max_lookup_batch = 10'000;  // fids in one /v1/lookup
  size_t max_sample = 10'000;        // fids in one /v1/volumes/<vid>/sample answer
  std::string agent_version;
  std::vector<uint8_t> worker_address;
  std::vector<std::string> transports;
};

class AgentService {
 public:
  AgentService(const VolumeSet& volumes, ServiceOptions options);

  HttpResponse Handle(const HttpRequest& request) const;

  // /readyz answers 200 once this is set (index loaded, volumes exported).
  void SetReady(bool ready) { ready_.store(ready); }

 private:
  HttpResponse Info(const HttpRequest& req) const;
  HttpResponse Volumes(const HttpRequest& req) const;
  HttpResponse Volume(const HttpRequest& req, std::string_view vid) const;
  HttpResponse Lookup(const HttpRequest& req) const;
  HttpResponse Sample(const HttpRequest& req, std::string_view vid) const;

  const VolumeSet& volumes_;
  ServiceOptions options_;
  // Thread-safe (prometheus-cpp metrics are atomics); mutable: counting is not a state change.
  mutable AgentMetrics metrics_;
  std::atomic<bool> ready_{false};
};

// The volume server's GET /<fid> semantics over an exported volume (see http_fallback.cc).
HttpResponse ServeNeedleOverHttp(const VolumeSet& volumes, const HttpRequest& request);

}  // namespace swrdma::agent
