// The agent's Prometheus metrics (prometheus-cpp core), served as text on GET /metrics.
// Counters are bumped on the request paths and by every volume scan; volume gauges, index lag and
// the HTTP server's connection counters are read at scrape time, so they can never drift from
// what is exported. Every name is swrdma_..., with its unit in the name. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "agent/read_server.h"
#include "http/http_server.h"
#include "index/lookup_cache.h"
#include "protocol/messages.h"

namespace swrdma::agent {

struct VolumeMap;
struct ScanReport;

class AgentMetrics {
 public:
  AgentMetrics();

  // One looked-up fid with its answer.
  void CountLookup(LookupStatus status);
  // One /v1/lookup request: how many fids and how long it took.
  void ObserveLookupRequest(size_t fids, double seconds);
  // One HTTP fallback read: its HTTP status and the body bytes sent.
  void CountFallbackRead(int http_status, size_t bytes);
  // One volume scan: exports (and their registration time), removals, failures, generation
  // changes, `.idx` entries applied and the delay from file change to applied.
  void ObserveScan(const ScanReport& report);
  // UCX transports the worker offers (swrdma_transport_available{transport}); replaces the set.
  void SetTransports(const std::vector<std::string>& transports);
  // RDMA devices and active ports seen by the last device scan.
  void SetRdmaDevices(size_t devices, size_t active_ports);
  // Where connection and response counters come from (the HTTP server); read at scrape time.
  void SetHttpStatsSource(std::function<HttpServerStats()> source);

  // Read authorization, as monotonic totals kept by its owner (set before Render): tokens
  // refused.
  struct SecurityTotals {
    uint64_t tokens_denied = 0;
  };
  void SetSecurityTotals(const SecurityTotals& totals);
  // The needle index's lookup cache (index/lookup_cache.h), as its totals (set before Render).
  void SetIndexCacheStats(const LookupCacheStats& stats);
  // Checked reads (agent/read_server.h), as its monotonic counters (set before Render).
  void SetCheckedReadTotals(const ReadServerStats& stats);
  // The verbs exporter (agent/verbs_exporter.h), read at scrape time. The swrdma_verbs_* metrics
  // exist only once a source is set: an agent without verbs has none, as /v1/info has no
  // "verbs" then.
  struct VerbsTotals {
    uint64_t connections = 0;       // clients connected now (RC queue pairs)
    uint64_t accepted = 0;          // connections accepted since start
    uint64_t registered_bytes = 0;  // pinned for RDMA READ: the served exports' registrations
    uint64_t regions = 0;           // their memory regions
    // The pin budget (--max-pinned-bytes, rdma/pin_budget.h): its limit (kUnlimited: none),
    // what it holds now (retired generations in their grace period included), how often it
    // refused, and the served bytes left unregistered (read checked).
    uint64_t pinned_limit_bytes = 0;
    uint64_t pinned_bytes = 0;
    uint64_t pin_refusals = 0;
    uint64_t unregistered_bytes = 0;
    bool on_demand_paging = false;  // exports registered ON_DEMAND: nothing pinned
    uint64_t hot_first_swaps = 0;   // volumes registered in place of colder ones (hot_first.h)
    uint64_t grants = 0;            // POST /v1/verbs/grant that opened or extended a connection
    uint64_t revocations = 0;       // connections ended: token expired, or never granted
  };
  void SetVerbsSource(std::function<VerbsTotals()> source);

  // Prometheus text exposition, with the volume gauges taken from `volumes`.
  std::string Render(const VolumeMap& volumes);
  // For metrics kept by their owners (agent/tcp_read_server.h registers its own families).
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  // Raises a counter that mirrors a monotonic value kept elsewhere to `value`.
  static void CatchUp(prometheus::Counter& counter, uint64_t value);
  void RenderVolumes(const VolumeMap& volumes);  // render_mu_ held
  void RenderHttp();                             // render_mu_ held
  void RenderVerbs();                            // render_mu_ held

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& lookups_;
  prometheus::Histogram& lookup_seconds_;
  prometheus::Histogram& lookup_batch_fids_;
  prometheus::Family<prometheus::Counter>& fallback_reads_;
  prometheus::Counter& fallback_bytes_;
  prometheus::Gauge& exported_volumes_;
  prometheus::Gauge& ec_volumes_;
  prometheus::Gauge& ec_shards_;
  prometheus::Gauge& ec_shard_bytes_;
  prometheus::Counter& ec_rebuilt_pieces_;
  prometheus::Counter& ec_rebuilt_bytes_;
  prometheus::Counter& ec_rebuild_failures_;
  prometheus::Gauge& exported_bytes_;
  prometheus::Gauge& registered_bytes_;
  prometheus::Gauge& live_needles_;
  // Volume scans.
  prometheus::Counter& scans_;
  prometheus::Counter& exports_;
  prometheus::Counter& removals_;
  prometheus::Counter& failures_;
  prometheus::Family<prometheus::Counter>& generation_changes_;
  prometheus::Histogram& registration_seconds_;
  // Index.
  prometheus::Counter& idx_entries_applied_;
  prometheus::Histogram& index_apply_delay_;
  prometheus::Gauge& idx_unapplied_bytes_;
  prometheus::Family<prometheus::Gauge>& index_needles_;
  // HTTP server.
  prometheus::Gauge& connections_open_;
  prometheus::Counter& connections_accepted_;
  prometheus::Counter& connections_refused_;
  prometheus::Counter& http_requests_;
  prometheus::Counter& http_timeouts_;
  prometheus::Family<prometheus::Counter>& http_responses_;
  // Devices and transports.
  prometheus::Family<prometheus::Gauge>& transports_;
  prometheus::Gauge& rdma_devices_;
  prometheus::Gauge& rdma_ports_active_;
  // The process: heap bytes in use (agent/heap.h), read at scrape time.
  prometheus::Gauge& heap_in_use_;
  // Read tokens.
  prometheus::Counter& tokens_denied_;
  // Checked reads.
  prometheus::Family<prometheus::Counter>& checked_requests_;
  prometheus::Family<prometheus::Counter>& checked_records_;
  prometheus::Counter& checked_bytes_;
  prometheus::Counter& index_cache_hits_;
  prometheus::Counter& index_cache_misses_;
  prometheus::Gauge& index_cache_entries_;
  prometheus::Gauge& checked_inflight_;

  std::mutex mu_;  // guards what follows and serializes Render
  std::function<HttpServerStats()> http_stats_;
  std::function<VerbsTotals()> verbs_totals_;
  struct VerbsMetrics {
    prometheus::Gauge* connections;
    prometheus::Counter* accepted;
    prometheus::Gauge* registered_bytes;
    prometheus::Gauge* regions;
    prometheus::Gauge* pinned_limit_bytes;
    prometheus::Gauge* pinned_bytes;
    prometheus::Counter* pin_refusals;
    prometheus::Gauge* unregistered_bytes;
    prometheus::Gauge* on_demand_paging;
    prometheus::Counter* hot_first_swaps;
    prometheus::Counter* grants;
    prometheus::Counter* revocations;
  };
  std::optional<VerbsMetrics> verbs_;
  struct VolumeGauges {
    prometheus::Gauge* live;
    prometheus::Gauge* deleted;
  };
  std::map<uint32_t, VolumeGauges> volume_gauges_;
  std::vector<prometheus::Gauge*> transport_gauges_;
};

}  // namespace swrdma::agent
