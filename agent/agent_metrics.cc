#include "agent/agent_metrics.h"

#include <prometheus/text_serializer.h>

#include "agent/volume_set.h"

namespace swrdma::agent {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

AgentMetrics::AgentMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      lookups_(BuildCounter()
                   .Name("swrdma_lookups_total")
                   .Help("File ids looked up, by answer")
                   .Register(*registry_)),
      lookup_seconds_(
          BuildHistogram()
              .Name("swrdma_lookup_request_seconds")
              .Help("Time to answer one /v1/lookup request")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3,
                                                               1e-2, 3e-2, 1e-1})),
      lookup_batch_fids_(
          BuildHistogram()
              .Name("swrdma_lookup_request_fids")
              .Help("File ids in one /v1/lookup request")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{1, 4, 16, 64, 256, 1024, 4096})),
      fallback_reads_(BuildCounter()
                          .Name("swrdma_http_fallback_reads_total")
                          .Help("GET /<fid> reads served over HTTP, by status code")
                          .Register(*registry_)),
      fallback_bytes_(BuildCounter()
                          .Name("swrdma_http_fallback_bytes_total")
                          .Help("Body bytes sent by the HTTP fallback")
                          .Register(*registry_)
                          .Add({})),
      exported_volumes_(BuildGauge()
                            .Name("swrdma_exported_volumes")
                            .Help("Volumes exported now")
                            .Register(*registry_)
                            .Add({})),
      exported_bytes_(BuildGauge()
                          .Name("swrdma_exported_bytes")
                          .Help("Bytes of volume files served now")
                          .Register(*registry_)
                          .Add({})),
      registered_bytes_(BuildGauge()
                            .Name("swrdma_registered_bytes")
                            .Help("Bytes registered with UCX (files plus growth reserves)")
                            .Register(*registry_)
                            .Add({})),
      live_needles_(BuildGauge()
                        .Name("swrdma_live_needles")
                        .Help("Live needles in the exported volumes")
                        .Register(*registry_)
                        .Add({})) {}

void AgentMetrics::CountLookup(LookupStatus status) {
  lookups_.Add({{"status", std::string(LookupStatusName(status))}}).Increment();
}

void AgentMetrics::ObserveLookupRequest(size_t fids, double seconds) {
  lookup_seconds_.Observe(seconds);
  lookup_batch_fids_.Observe(static_cast<double>(fids));
}

void AgentMetrics::CountFallbackRead(int http_status, size_t bytes) {
  fallback_reads_.Add({{"code", std::to_string(http_status)}}).Increment();
  fallback_bytes_.Increment(static_cast<double>(bytes));
}

std::string AgentMetrics::Render(const VolumeMap& volumes) {
  double exported = 0, registered = 0, live = 0;
  for (const auto& [vid, entry] : volumes.volumes) {
    exported += static_cast<double>(entry.exported->size());
    registered += static_cast<double>(entry.exported->registered_length());
    live += static_cast<double>(entry.state.live);
  }
  exported_volumes_.Set(static_cast<double>(volumes.volumes.size()));
  exported_bytes_.Set(exported);
  registered_bytes_.Set(registered);
  live_needles_.Set(live);
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace swrdma::agent
