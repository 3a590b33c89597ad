#include "agent/agent_metrics.h"

#include <filesystem>
#include <limits>

#include <prometheus/text_serializer.h>

#include "agent/heap.h"
#include "agent/volume_set.h"
#include "rdma/pin_budget.h"

namespace swrdma::agent {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

namespace {

prometheus::Counter& Counter(prometheus::Registry& r, const std::string& name,
                             const std::string& help) {
  return BuildCounter().Name(name).Help(help).Register(r).Add({});
}
prometheus::Gauge& Gauge(prometheus::Registry& r, const std::string& name,
                         const std::string& help) {
  return BuildGauge().Name(name).Help(help).Register(r).Add({});
}

}  // namespace

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
      fallback_bytes_(Counter(*registry_, "swrdma_http_fallback_bytes_total",
                              "Body bytes sent by the HTTP fallback")),
      exported_volumes_(Gauge(*registry_, "swrdma_exported_volumes", "Volumes exported now")),
      ec_volumes_(Gauge(*registry_, "swrdma_ec_volumes",
                        "Erasure-coded volumes served now (by checked reads)")),
      ec_shards_(Gauge(*registry_, "swrdma_ec_shards", "EC shard files held here and mapped")),
      ec_shard_bytes_(
          Gauge(*registry_, "swrdma_ec_shard_bytes", "Bytes of the EC shard files mapped")),
      ec_rebuilt_pieces_(Counter(*registry_, "swrdma_ec_rebuilt_pieces_total",
                                 "Pieces of EC records rebuilt from parity (a data shard not "
                                 "held here, at least data_shards others held)")),
      ec_rebuilt_bytes_(Counter(*registry_, "swrdma_ec_rebuilt_bytes_total",
                                "Bytes of EC records rebuilt from parity")),
      ec_rebuild_failures_(Counter(*registry_, "swrdma_ec_rebuild_failures_total",
                                   "EC rebuilds that failed (a source shard too short, ...)")),
      exported_bytes_(
          Gauge(*registry_, "swrdma_exported_bytes", "Bytes of volume files served now")),
      registered_bytes_(Gauge(*registry_, "swrdma_registered_bytes",
                              "Bytes registered with UCX (files plus growth reserves)")),
      live_needles_(
          Gauge(*registry_, "swrdma_live_needles", "Live needles in the exported volumes")),
      scans_(Counter(*registry_, "swrdma_volume_scans_total",
                     "Scans of the volume directories (start-up, file events, periodic)")),
      exports_(Counter(*registry_, "swrdma_volume_exports_total",
                       "Volume exports created (new volumes and re-exports)")),
      removals_(Counter(*registry_, "swrdma_volume_removals_total",
                        "Volumes no longer exported because they left the disk")),
      failures_(Counter(*registry_, "swrdma_volume_failures_total",
                        "Volumes a scan could not index or export (see the log)")),
      generation_changes_(BuildCounter()
                              .Name("swrdma_generation_changes_total")
                              .Help("Re-exports of a served volume under a new generation, by "
                                    "reason (index_rebuilt = vacuum/replaced file, outgrown, "
                                    "faulted, file_moved)")
                              .Register(*registry_)),
      registration_seconds_(
          BuildHistogram()
              .Name("swrdma_registration_seconds")
              .Help("Time to map, register (ucp_mem_map) and pack the rkey of one volume export")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2,
                                                               0.1, 0.3, 1, 3, 10, 30})),
      idx_entries_applied_(Counter(*registry_, "swrdma_index_entries_applied_total",
                                   ".idx entries replayed into the needle index")),
      index_apply_delay_(
          BuildHistogram()
              .Name("swrdma_index_apply_delay_seconds")
              .Help("From the first file event (inotify) of a burst to the end of the scan that "
                    "applied it")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1,
                                                               2, 5, 10})),
      idx_unapplied_bytes_(Gauge(*registry_, "swrdma_index_unapplied_bytes",
                                 "Bytes of .idx files on disk not yet applied to the index "
                                 "(sampled at scrape time)")),
      index_needles_(BuildGauge()
                         .Name("swrdma_index_needles")
                         .Help("Needles in the index per exported volume, by state (live, "
                               "deleted), as of the last scan")
                         .Register(*registry_)),
      connections_open_(
          Gauge(*registry_, "swrdma_http_connections_open", "HTTP connections being served")),
      connections_accepted_(Counter(*registry_, "swrdma_http_connections_accepted_total",
                                    "HTTP connections accepted and served")),
      connections_refused_(Counter(*registry_, "swrdma_http_connections_refused_total",
                                   "HTTP connections refused (503) over --max-connections")),
      http_requests_(Counter(*registry_, "swrdma_http_requests_total", "HTTP requests handled")),
      http_timeouts_(Counter(*registry_, "swrdma_http_timeouts_total",
                             "HTTP requests not read, or responses not written, in time")),
      http_responses_(BuildCounter()
                          .Name("swrdma_http_responses_total")
                          .Help("HTTP responses by status class (1xx..5xx)")
                          .Register(*registry_)),
      transports_(BuildGauge()
                      .Name("swrdma_transport_available")
                      .Help("UCX transports the agent's worker offers (1 each); the transport a "
                            "client's endpoint uses shows on the client (swrdma info)")
                      .Register(*registry_)),
      rdma_devices_(Gauge(*registry_, "swrdma_rdma_devices", "RDMA devices (ibverbs) on the host")),
      rdma_ports_active_(
          Gauge(*registry_, "swrdma_rdma_ports_active", "RDMA ports in state PORT_ACTIVE")),
      heap_in_use_(Gauge(*registry_, "swrdma_heap_in_use_bytes",
                         "Heap bytes allocated and not freed (glibc mallinfo2; the sanitizer "
                         "allocator in ASan builds)")),
      tokens_denied_(Counter(*registry_, "swrdma_read_tokens_denied_total",
                             "Requests or fids refused for a missing or invalid read token (401)")),
      checked_requests_(BuildCounter()
                            .Name("swrdma_checked_read_requests_total")
                            .Help("Checked read requests (UCX active messages) by outcome: "
                                  "served, or dropped as malformed (no answer is sent)")
                            .Register(*registry_)),
      checked_records_(BuildCounter()
                           .Name("swrdma_checked_read_fids_total")
                           .Help("Fids of checked read requests by answer: sent (the record), "
                                 "refused (not found, deleted, denied, ...), send_failed")
                           .Register(*registry_)),
      checked_bytes_(Counter(*registry_, "swrdma_checked_read_bytes_total",
                             "Needle record bytes sent to checked readers")),
      index_cache_hits_(
          Counter(*registry_, "swrdma_index_lookup_cache_hits_total",
                  "Needle index lookups answered from memory (--index-cache-entries)")),
      index_cache_misses_(Counter(*registry_, "swrdma_index_lookup_cache_misses_total",
                                  "Needle index lookups that went to RocksDB")),
      index_cache_entries_(Gauge(*registry_, "swrdma_index_lookup_cache_entries",
                                 "Needle index answers held in memory")),
      checked_inflight_(Gauge(*registry_, "swrdma_checked_read_replies_inflight",
                              "Checked read replies UCX has not finished sending")) {
  // Series that should read 0 rather than be absent before the first event.
  for (const char* reason : {"index_rebuilt", "outgrown", "faulted", "file_moved"})
    generation_changes_.Add({{"reason", reason}});
  for (const char* cls : {"2xx", "3xx", "4xx", "5xx"})
    http_responses_.Add({{"class", cls}});
}

void AgentMetrics::SetSecurityTotals(const SecurityTotals& t) {
  std::lock_guard lock(mu_);
  CatchUp(tokens_denied_, t.tokens_denied);
}

void AgentMetrics::SetCheckedReadTotals(const ReadServerStats& t) {
  std::lock_guard lock(mu_);
  CatchUp(checked_requests_.Add({{"result", "served"}}), t.requests);
  CatchUp(checked_requests_.Add({{"result", "malformed"}}), t.malformed);
  CatchUp(checked_records_.Add({{"answer", "sent"}}), t.replies_ok);
  CatchUp(checked_records_.Add({{"answer", "refused"}}), t.replies_refused);
  CatchUp(checked_records_.Add({{"answer", "send_failed"}}), t.send_failures);
  CatchUp(checked_bytes_, t.bytes);
  checked_inflight_.Set(static_cast<double>(t.inflight));
}

void AgentMetrics::SetIndexCacheStats(const LookupCacheStats& stats) {
  std::lock_guard lock(mu_);
  CatchUp(index_cache_hits_, stats.hits);
  CatchUp(index_cache_misses_, stats.misses);
  index_cache_entries_.Set(static_cast<double>(stats.entries));
}

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

void AgentMetrics::ObserveScan(const ScanReport& r) {
  scans_.Increment();
  exports_.Increment(static_cast<double>(r.exported));
  removals_.Increment(static_cast<double>(r.removed));
  failures_.Increment(static_cast<double>(r.failed));
  for (const auto& [reason, n] : r.generation_changes)
    generation_changes_.Add({{"reason", reason}}).Increment(static_cast<double>(n));
  for (double s : r.registration_seconds)
    registration_seconds_.Observe(s);
  idx_entries_applied_.Increment(static_cast<double>(r.idx_entries_applied));
  if (r.change_to_applied_seconds >= 0) index_apply_delay_.Observe(r.change_to_applied_seconds);
}

void AgentMetrics::SetTransports(const std::vector<std::string>& transports) {
  std::lock_guard lock(mu_);
  for (auto* g : transport_gauges_)
    transports_.Remove(g);
  transport_gauges_.clear();
  for (const auto& t : transports) {
    auto& g = transports_.Add({{"transport", t}});
    g.Set(1);
    transport_gauges_.push_back(&g);
  }
}

void AgentMetrics::SetRdmaDevices(size_t devices, size_t active_ports) {
  rdma_devices_.Set(static_cast<double>(devices));
  rdma_ports_active_.Set(static_cast<double>(active_ports));
}

void AgentMetrics::SetHttpStatsSource(std::function<HttpServerStats()> source) {
  std::lock_guard lock(mu_);
  http_stats_ = std::move(source);
}

void AgentMetrics::SetVerbsSource(std::function<VerbsTotals()> source) {
  std::lock_guard lock(mu_);
  verbs_totals_ = std::move(source);
  if (!verbs_) {
    verbs_ = VerbsMetrics{
        &Gauge(*registry_, "swrdma_verbs_connections",
               "Verbs clients connected now (RC queue pairs accepting RDMA READ only)"),
        &Counter(*registry_, "swrdma_verbs_connections_accepted_total",
                 "Verbs connections accepted since start"),
        &Gauge(*registry_, "swrdma_verbs_registered_bytes",
               "Bytes registered REMOTE_READ for RDMA (pinned unless the device pages on demand): "
               "the served exports; retired generations in their grace period are not counted"),
        &Gauge(*registry_, "swrdma_verbs_memory_regions",
               "Memory regions registered for the served exports"),
        &Gauge(*registry_, "swrdma_verbs_pinned_limit_bytes",
               "--max-pinned-bytes: what registrations for RDMA may pin (+Inf: no limit)"),
        &Gauge(*registry_, "swrdma_verbs_pinned_bytes",
               "Bytes held against --max-pinned-bytes, retired generations in their grace "
               "period included"),
        &Counter(*registry_, "swrdma_verbs_pin_refusals_total",
                 "Registrations left out because they would pass --max-pinned-bytes"),
        &Gauge(*registry_, "swrdma_verbs_unregistered_bytes",
               "Served volume bytes not registered for RDMA (past --max-pinned-bytes or a failed "
               "registration): verbs clients read them through the agent"),
        &Gauge(*registry_, "swrdma_verbs_on_demand_paging",
               "1: exports are registered ON_DEMAND (the device faults pages in, nothing is "
               "pinned, --max-pinned-bytes does not apply); 0: registrations pin their pages"),
        &Counter(*registry_, "swrdma_verbs_hot_first_swaps_total",
                 "Volumes registered for RDMA READ in place of colder ones that were dropped to "
                 "make room within --max-pinned-bytes (hotter volumes first)"),
        &Counter(*registry_, "swrdma_verbs_grants_total",
                 "POST /v1/verbs/grant that opened or extended a verbs connection for RDMA READ "
                 "(read tokens on: a connection reads only while its token is valid)"),
        &Counter(*registry_, "swrdma_verbs_revocations_total",
                 "Verbs connections the agent ended: their read token expired, or none was shown "
                 "within 30 s of connecting"),
    };
  }
}

void AgentMetrics::RenderVerbs() {
  if (!verbs_totals_ || !verbs_) return;
  const VerbsTotals t = verbs_totals_();
  verbs_->connections->Set(static_cast<double>(t.connections));
  CatchUp(*verbs_->accepted, t.accepted);
  verbs_->registered_bytes->Set(static_cast<double>(t.registered_bytes));
  verbs_->regions->Set(static_cast<double>(t.regions));
  verbs_->pinned_limit_bytes->Set(t.pinned_limit_bytes == rdma::PinBudget::kUnlimited
                                      ? std::numeric_limits<double>::infinity()
                                      : static_cast<double>(t.pinned_limit_bytes));
  verbs_->pinned_bytes->Set(static_cast<double>(t.pinned_bytes));
  CatchUp(*verbs_->pin_refusals, t.pin_refusals);
  verbs_->unregistered_bytes->Set(static_cast<double>(t.unregistered_bytes));
  verbs_->on_demand_paging->Set(t.on_demand_paging ? 1 : 0);
  CatchUp(*verbs_->hot_first_swaps, t.hot_first_swaps);
  CatchUp(*verbs_->grants, t.grants);
  CatchUp(*verbs_->revocations, t.revocations);
}

void AgentMetrics::CatchUp(prometheus::Counter& counter, uint64_t value) {
  const double now = counter.Value();
  if (static_cast<double>(value) > now) counter.Increment(static_cast<double>(value) - now);
}

void AgentMetrics::RenderVolumes(const VolumeMap& volumes) {
  double exported = 0, registered = 0, live = 0, unapplied = 0;
  for (const auto& [vid, entry] : volumes.volumes) {
    exported += static_cast<double>(entry.exported->size());
    registered += static_cast<double>(entry.exported->registered_length());
    live += static_cast<double>(entry.state.live);
    // The .idx grows as the volume server writes; what lies past the applied watermark is not
    // served yet (normally a few entries until the next scan, held-back tails included).
    std::error_code ec;
    const uint64_t idx_size = std::filesystem::file_size(entry.exported->files().idx, ec);
    if (!ec && idx_size > entry.state.idx_applied) {
      unapplied += static_cast<double>(idx_size - entry.state.idx_applied);
    }
    auto it = volume_gauges_.find(vid);
    if (it == volume_gauges_.end()) {
      const std::string v = std::to_string(vid);
      it = volume_gauges_
               .emplace(vid,
                        VolumeGauges{&index_needles_.Add({{"volume", v}, {"state", "live"}}),
                                     &index_needles_.Add({{"volume", v}, {"state", "deleted"}})})
               .first;
    }
    it->second.live->Set(static_cast<double>(entry.state.live));
    it->second.deleted->Set(static_cast<double>(entry.state.deleted));
  }
  std::erase_if(volume_gauges_, [&](const auto& kv) {
    if (volumes.volumes.contains(kv.first)) return false;
    index_needles_.Remove(kv.second.live);
    index_needles_.Remove(kv.second.deleted);
    return true;
  });
  exported_volumes_.Set(static_cast<double>(volumes.volumes.size()));
  double shards = 0, shard_bytes = 0;
  for (const auto& [vid, e] : volumes.ec) {
    for (uint32_t shard : e->local_shards()) {
      shards += 1;
      shard_bytes += static_cast<double>(e->shard_size(shard));
    }
  }
  ec_volumes_.Set(static_cast<double>(volumes.ec.size()));
  ec_shards_.Set(shards);
  ec_shard_bytes_.Set(shard_bytes);
  const EcRebuildTotals rebuilt = EcRebuildTotalsNow();
  CatchUp(ec_rebuilt_pieces_, rebuilt.pieces);
  CatchUp(ec_rebuilt_bytes_, rebuilt.bytes);
  CatchUp(ec_rebuild_failures_, rebuilt.failures);
  exported_bytes_.Set(exported);
  registered_bytes_.Set(registered);
  live_needles_.Set(live);
  idx_unapplied_bytes_.Set(unapplied);
}

void AgentMetrics::RenderHttp() {
  if (!http_stats_) return;
  const HttpServerStats s = http_stats_();
  connections_open_.Set(static_cast<double>(s.connections_open));
  CatchUp(connections_accepted_, s.connections_total);
  CatchUp(connections_refused_, s.connections_refused);
  CatchUp(http_requests_, s.requests);
  CatchUp(http_timeouts_, s.timeouts);
  for (size_t k = 1; k < s.responses_by_class.size(); ++k) {
    CatchUp(http_responses_.Add({{"class", std::to_string(k) + "xx"}}), s.responses_by_class[k]);
  }
}

std::string AgentMetrics::Render(const VolumeMap& volumes) {
  std::lock_guard lock(mu_);
  RenderVolumes(volumes);
  RenderHttp();
  RenderVerbs();
  heap_in_use_.Set(static_cast<double>(HeapInUseBytes()));
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace swrdma::agent
