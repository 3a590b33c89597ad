#include "tests/tools/chaos_reader.h"

#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "client/client.h"
#include "protocol/crc32c.h"
#include "tests/tools/chaos_manifest.h"

namespace swrdma::chaos {

namespace {

using Clock = std::chrono::steady_clock;

void AddStats(ReaderCounts& c, const client::ClientStats& s) {
  c.retries += s.retries;
  c.reconnects += s.reconnects;
  c.lookups += s.lookups;
  c.crc_failures += s.crc_failures;
  c.http_fallbacks += s.http_fallbacks;
}

// stderr lines for the first few events of each kind, so a log shows examples, not floods.
class Examples {
 public:
  void Note(const std::string& name, const std::string& kind, const std::string& what) {
    if (++seen_[kind] <= 3)
      std::fprintf(stderr, "[%s] %s: %s\n", name.c_str(), kind.c_str(), what.c_str());
  }

 private:
  std::map<std::string, uint64_t> seen_;
};

}  // namespace

ReaderCounts RunReader(const ReaderOptions& o, const volatile std::sig_atomic_t* stop) {
  ReaderCounts counts;
  const auto start = Clock::now();
  const auto deadline = start + o.duration;
  ManifestReader manifest(o.manifest);
  std::mt19937_64 rng(o.seed);
  std::unique_ptr<client::Client> client;
  Examples examples;
  auto last_refresh = Clock::time_point();
  auto next_batch = start;
  auto refresh = [&] {
    Status s = manifest.Refresh();
    if (!s.ok()) examples.Note(o.name, "manifest", s.ToString());
    last_refresh = Clock::now();
  };

  while (Clock::now() < deadline && !*stop) {
    if (!client) {
      client::ClientOptions co;
      co.agent_url = o.agent_url;
      co.transports = o.transports;
      co.timeout = o.timeout;
      auto c = client::Client::Connect(co);
      if (!c) {
        ++counts.connect_failures;
        examples.Note(o.name, "connect failed", c.error().ToString());
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      client = std::move(*c);
    }
    if (Clock::now() - last_refresh >= std::chrono::milliseconds(20)) refresh();
    const auto& live = manifest.live();
    const auto& gone = manifest.gone();
    if (live.empty() && gone.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }

    const size_t k =
        std::uniform_int_distribution<size_t>(1, std::max<size_t>(1, o.max_batch))(rng);
    std::vector<std::string> fids;
    for (size_t i = 0; i < k; ++i) {
      const bool pick_gone =
          live.empty() || (!gone.empty() && std::bernoulli_distribution(o.gone_fraction)(rng));
      const auto& from = pick_gone ? gone : live;
      const size_t idx = from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(rng)];
      fids.push_back(manifest.needles()[idx].fid);
    }
    const uint64_t t0 = NowUnixNs();
    auto results = client->ReadMany(fids);
    refresh();  // classify with what the writer has recorded by now

    for (size_t i = 0; i < fids.size(); ++i) {
      ++counts.reads;
      const KnownNeedle* n = manifest.Find(fids[i]);
      const auto& r = results[i];
      if (r) {
        const uint32_t crc = Crc32c(r->data);
        if (r->data.size() != n->size || crc != n->crc) {
          ++counts.wrong_bytes;
          std::fprintf(stderr,
                       "[%s] WRONG BYTES: %s: got %zu bytes crc %08x via %s, manifest says %llu "
                       "bytes crc %08x\n",
                       o.name.c_str(), fids[i].c_str(), r->data.size(), crc, r->via.c_str(),
                       static_cast<unsigned long long>(n->size), n->crc);
          continue;
        }
        ++counts.ok;
        if (n->gone_ns != 0) {
          if (t0 > n->gone_ns + static_cast<uint64_t>(o.delete_grace.count()) * 1'000'000) {
            ++counts.stale_after_delete;
            examples.Note(o.name, "STALE read of a gone needle",
                          fmt::format("{} read ok {} ms after it was deleted", fids[i],
                                      (t0 - n->gone_ns) / 1'000'000));
          } else {
            ++counts.ok_gone_within_grace;
          }
        }
        continue;
      }
      const std::string code(code_name(r.error().code()));
      if (n->gone_ns != 0 || n->cut) {
        ++counts.failed_gone[code];
      } else {
        ++counts.failed[code];
        examples.Note(o.name, "live needle failed (" + code + ")", r.error().ToString());
      }
    }
    if (client->stats().http_fallbacks > 0) {
      // The client lost its UCX endpoint and went on over HTTP: start a fresh one.
      AddStats(counts, client->stats());
      client.reset();
    }
    if (o.max_reads_per_second > 0) {
      next_batch += std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(static_cast<double>(k) / o.max_reads_per_second));
      const auto now = Clock::now();
      if (next_batch > now) {
        std::this_thread::sleep_for(next_batch - now);
      } else if (now - next_batch > std::chrono::seconds(1)) {
        next_batch = now;  // fell behind (agent down): do not burst to catch up
      }
    }
  }
  if (client) AddStats(counts, client->stats());
  counts.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return counts;
}

std::string ToJson(const ReaderOptions& o, const ReaderCounts& c) {
  nlohmann::json j;
  j["reader"] = o.name;
  j["seconds"] = std::round(c.seconds * 10) / 10;
  j["reads"] = c.reads;
  j["ok"] = c.ok;
  j["ok_gone_within_grace"] = c.ok_gone_within_grace;
  j["stale_after_delete"] = c.stale_after_delete;
  j["wrong_bytes"] = c.wrong_bytes;
  j["failed"] = c.failed;
  j["failed_gone"] = c.failed_gone;
  j["connect_failures"] = c.connect_failures;
  j["retries"] = c.retries;
  j["reconnects"] = c.reconnects;
  j["lookups"] = c.lookups;
  j["crc_failures"] = c.crc_failures;
  j["http_fallbacks"] = c.http_fallbacks;
  return j.dump();
}

VerifyCounts RunVerify(const ReaderOptions& o) {
  VerifyCounts counts;
  ManifestReader manifest(o.manifest);
  if (Status s = manifest.Refresh(); !s.ok()) {
    std::fprintf(stderr, "[verify] %s\n", s.ToString().c_str());
    return counts;
  }
  client::ClientOptions co;
  co.agent_url = o.agent_url;
  co.transports = o.transports;
  co.timeout = o.timeout;
  co.lookup_cache_ttl = std::chrono::milliseconds(0);  // every answer from the agent, now
  auto c = client::Client::Connect(co);
  if (!c) {
    std::fprintf(stderr, "[verify] connecting: %s\n", c.error().ToString().c_str());
    return counts;
  }
  counts.connected = true;
  Examples examples;
  const auto& all = manifest.needles();
  constexpr size_t kBatch = 256;
  for (size_t start = 0; start < all.size(); start += kBatch) {
    std::vector<std::string> fids;
    for (size_t i = start; i < std::min(all.size(), start + kBatch); ++i)
      fids.push_back(all[i].fid);
    auto results = (*c)->ReadMany(fids);
    for (size_t j = 0; j < fids.size(); ++j) {
      const KnownNeedle& n = all[start + j];
      const auto& r = results[j];
      const bool gone = n.gone_ns != 0;
      if (r && (r->data.size() != n.size || Crc32c(r->data) != n.crc)) {
        ++counts.wrong_bytes;
        examples.Note("verify", "WRONG BYTES", n.fid);
      } else if (r) {
        if (gone) {
          ++counts.gone_ok;
          examples.Note("verify", "gone needle still readable", n.fid);
        } else if (n.cut) {
          ++counts.cut_ok;
        } else {
          ++counts.live_ok;
        }
      } else if (gone) {
        ++counts.gone_failed[std::string(code_name(r.error().code()))];
      } else if (n.cut) {
        ++counts.cut_failed;
      } else {
        ++counts.live_failed[std::string(code_name(r.error().code()))];
        examples.Note("verify", "live needle failed", r.error().ToString());
      }
    }
  }
  return counts;
}

std::string ToJson(const VerifyCounts& c) {
  nlohmann::json j;
  j["live_ok"] = c.live_ok;
  j["live_failed"] = c.live_failed;
  j["gone_ok"] = c.gone_ok;
  j["gone_failed"] = c.gone_failed;
  j["cut_ok"] = c.cut_ok;
  j["cut_failed"] = c.cut_failed;
  j["wrong_bytes"] = c.wrong_bytes;
  j["connected"] = c.connected;
  j["passed"] = c.passed();
  return j.dump();
}

}  // namespace swrdma::chaos
