// The agent's Prometheus metrics (prometheus-cpp core), served as text on GET /metrics.
// Counters are bumped on the request paths; volume gauges are read from the current snapshot at
// scrape time, so they can never drift from what is exported.
#pragma once

#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "protocol/messages.h"

namespace swrdma::agent {

struct VolumeMap;

class AgentMetrics {
 public:
  AgentMetrics();

  // One looked-up fid with its answer.
  void CountLookup(LookupStatus status);
  // One /v1/lookup request: how many fids and how long it took.
  void ObserveLookupRequest(size_t fids, double seconds);
  // One HTTP fallback read: its HTTP status and the body bytes sent.
  void CountFallbackRead(int http_status, size_t bytes);
  // Prometheus text exposition, with the volume gauges taken from `volumes`.
  std::string Render(const VolumeMap& volumes);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& lookups_;
  prometheus::Histogram& lookup_seconds_;
  prometheus::Histogram& lookup_batch_fids_;
  prometheus::Family<prometheus::Counter>& fallback_reads_;
  prometheus::Counter& fallback_bytes_;
  prometheus::Gauge& exported_volumes_;
  prometheus::Gauge& exported_bytes_;
  prometheus::Gauge& registered_bytes_;
  prometheus::Gauge& live_needles_;
};

}  // namespace swrdma::agent
