// Client::Impl's same-host path (issue 18): when the agent advertises a Unix socket (/v1/info
// "local_socket") and it answers as that agent, reads resolve needles through the agent's index
// over the socket and verify the records in place in read-only mappings of the volume files
// (client/local_reader.h): zero copies, no UCX. Reported as transport "local".
#include <algorithm>

#include <fmt/format.h>

#include "client/client_impl.h"
#include "client/client_internal.h"

namespace swrdma::client {

void Client::Impl::ConfigureLocal() {
  // --transports: "local" among UCX names. Unset: local when the agent offers it, else UCX.
  // Without "local": never local. Only "local": local or an error (no UCX at all).
  if (!options_.transports) return;
  std::string rest;
  bool named = false;
  std::string_view t = *options_.transports;
  for (size_t pos = 0; pos <= t.size();) {
    size_t comma = t.find(',', pos);
    if (comma == std::string_view::npos) comma = t.size();
    std::string_view item = t.substr(pos, comma - pos);
    pos = comma + 1;
    if (item == "local") {
      named = true;
    } else if (!item.empty()) {
      if (!rest.empty()) rest += ',';
      rest += item;
    }
  }
  local_allowed_ = named;
  local_only_ = named && rest.empty();
  if (named) options_.transports = rest.empty() ? std::nullopt : std::optional(rest);
}

Status Client::Impl::ConnectLocal(std::string_view socket, uint64_t instance) {
  local_.reset();
  local_note_.clear();
  if (!local_allowed_) {
    local_note_ = "not among --transports";
    return Status(Code::kUnavailable, local_note_);
  }
  if (socket.empty() || instance == 0) {
    local_note_ = "the agent offers no local socket (--local-socket)";
    return Status(Code::kUnavailable, local_note_);
  }
  auto reader = LocalReader::Connect(std::string(socket), instance, options_.timeout);
  if (!reader) {
    local_note_ = reader.error().message();
    return reader.error();
  }
  local_ = std::move(*reader);
  return Status::Ok();
}

void Client::Impl::LocalRound(std::span<const std::string> fids, std::span<const size_t> which,
                              const ReadOptions& options, ViewResults& out, bool last,
                              const OnRead* emit) {
  LocalReader& reader = *local_;
  const auto now = std::chrono::steady_clock::now();
  std::vector<FileId> parsed(which.size());
  std::vector<char> parsed_ok(which.size(), 0);
  std::vector<LocalLookupEntry> where(which.size());
  std::vector<size_t> to_lookup;
  std::vector<std::string> lookup_fids;
  std::vector<size_t> checked_which;  // answered "checked": read through the agent (below)
  for (size_t k = 0; k < which.size(); ++k) {
    if (auto p = ParseFileId(fids[which[k]])) {
      parsed[k] = *p;
      parsed_ok[k] = 1;
    }
  }
  // The cache finds in a loop of their own: each is a cache miss (the cache is hit at random),
  // and independent finds back to back let the CPU overlap them.
  for (size_t k = 0; k < which.size(); ++k) {
    if (parsed_ok[k]) {
      const LocalReader::Cached* c = last ? nullptr : reader.Find(parsed[k], now);
      if (c != nullptr) {
        LocalLookupEntry& e = where[k];
        e.volume_id = c->volume_id;
        e.generation = c->generation;
        e.offset = c->offset;
        e.length = c->length;
        e.size = c->size;
        e.version = c->version;
        ++stats_.lookup_cache_hits;
        continue;
      }
    }
    to_lookup.push_back(k);
    lookup_fids.push_back(fids[which[k]]);
  }
  if (!lookup_fids.empty()) {
    ++stats_.lookups;
    auto answers = reader.Lookup(lookup_fids);
    if (!answers) {
      for (size_t k : to_lookup) {
        out[which[k]] = Error(answers.error().code(),
                              fmt::format("{}: {}", fids[which[k]], answers.error().message()));
        where[k].status = LocalStatus::kInternal;
      }
    } else {
      const auto expires = now + options_.lookup_cache_ttl;
      for (size_t j = 0; j < to_lookup.size(); ++j) {
        const size_t k = to_lookup[j];
        where[k] = std::move((*answers)[j]);
        const LocalLookupEntry& e = where[k];
        if (e.status == LocalStatus::kOk && parsed_ok[k]) {
          reader.Remember(
              parsed[k],
              {e.volume_id, e.size, e.generation, e.offset, e.length, e.version, expires},
              options_.lookup_cache_entries);
        } else if (e.status == LocalStatus::kChecked) {
          checked_which.push_back(which[k]);
        } else if (e.status != LocalStatus::kOk) {
          out[which[k]] = Error(LocalStatusCode(e.status),
                                fmt::format("{}: {}", fids[which[k]],
                                            e.reason.empty() ? LocalStatusName(e.status)
                                                             : std::string_view(e.reason)));
        }
      }
    }
  }
  // Where each record starts and ends in memory, to touch a few reads ahead: the reads land at
  // random in volumes far larger than the CPU caches and TLBs, so a small verified read is
  // dominated by its first touches, the header and then the checksum past the data. Loading
  // those two bytes of the record a few reads ahead overlaps the misses with the CRC of the
  // current one (+25 % for 4 KiB here; __builtin_prefetch gained a third of that: prefetches
  // that miss the TLB are dropped). Only inside the mapping, whose tail is under the fault
  // guard: a touch past a truncated end is patched and marks the mapping faulted, and the reads
  // on it then fail as stale and retry (never wrong bytes), as they would without the touch.
  constexpr uint64_t kTouchMaxRecord = 64 * 1024;
  std::vector<std::pair<const std::byte*, const std::byte*>> ahead(which.size());
  // The mappings touched stay mapped (and guarded) for the round, even if a failed read drops
  // its volume from the reader before the touches of later reads on it.
  std::vector<std::shared_ptr<const LocalMapping>> held;
  {
    uint32_t vid = 0;
    uint64_t generation = 0, limit = 0;
    const std::byte* base = nullptr;
    for (size_t k = 0; k < which.size(); ++k) {
      const LocalLookupEntry& e = where[k];
      // Large records: their first touches are noise next to the CRC streaming through them.
      if (e.status != LocalStatus::kOk || e.length == 0 || e.length > kTouchMaxRecord) continue;
      const uint64_t end = e.offset + e.length;
      if (base == nullptr || e.volume_id != vid || e.generation != generation || end > limit) {
        auto m = reader.MappingFor(e.volume_id, e.generation, end);
        if (!m) continue;  // reported by the loop below
        vid = e.volume_id;
        generation = e.generation;
        base = (*m)->data();
        limit = (*m)->mapped_length();
        held.push_back(std::move(*m));
        if (end > limit) continue;
      }
      ahead[k] = {base + e.offset, base + end - 1};
    }
  }
  // In groups: the loads of a group are independent and miss together, so the CPU waits for
  // one group's misses at a time rather than one per read.
  constexpr size_t kTouchGroup = 8;
  constexpr size_t kPrefetchAhead = 2;
  constexpr size_t kCacheLine = 64;
  unsigned touched = 0;  // the loads' only use: they must happen
  // ReadEach's per-read latency starts at the touch: the miss it takes belongs to that read.
  std::vector<NeedleView::TimePoint> issued_at(stamp_reads_ ? which.size() : 0);
  const auto touch_group = [&](size_t first) {
    const size_t last = std::min(first + kTouchGroup, ahead.size());
    if (first >= last) return;
    const auto now = stamp_reads_ ? std::chrono::steady_clock::now() : NeedleView::TimePoint{};
    for (size_t k = first; k < last; ++k) {
      if (ahead[k].first == nullptr) continue;
      if (stamp_reads_) issued_at[k] = now;
      touched += std::to_integer<unsigned>(*static_cast<const volatile std::byte*>(ahead[k].first));
      touched +=
          std::to_integer<unsigned>(*static_cast<const volatile std::byte*>(ahead[k].second));
    }
  };
  touch_group(0);
  LookupResult lr;  // VerifyInPlace's view of an answer: length and size
  for (size_t k = 0; k < which.size(); ++k) {
    if (k % kTouchGroup == 0) touch_group(k + kTouchGroup);
    // Then every line of the record two reads ahead: its pages are in the TLB by now (the touch
    // above), so these prefetches are not dropped, and the CRC of the current read overlaps
    // with them. (4 KiB, K=64, one pinned core: 1.00 -> 1.17 M reads/s, medians of 6; one read
    // ahead or four did no better, every second line did worse.)
    if (k + kPrefetchAhead < ahead.size() && ahead[k + kPrefetchAhead].first != nullptr) {
      const auto [first, last] = ahead[k + kPrefetchAhead];
      for (const std::byte* p = first; p <= last; p += kCacheLine)
        __builtin_prefetch(p);
      __builtin_prefetch(last);
    }
    const LocalLookupEntry& e = where[k];
    if (e.status != LocalStatus::kOk) continue;
    const size_t i = which[k];
    auto mapping = reader.MappingFor(e.volume_id, e.generation, e.offset + e.length);
    if (!mapping) {
      out[i] =
          Error(mapping.error().code(), fmt::format("{}: {}", fids[i], mapping.error().message()));
      continue;
    }
    const std::shared_ptr<const LocalMapping>& m = *mapping;
    lr.length = e.length;
    lr.size = e.size;
    // ReadEach's per-read latency: from its touch above (or here) to verified.
    const auto issued = !stamp_reads_ ? NeedleView::TimePoint{}
                        : issued_at[k] != NeedleView::TimePoint{}
                            ? issued_at[k]
                            : std::chrono::steady_clock::now();
    LocalSlice slice(m, m->data() + e.offset, static_cast<size_t>(e.length));
    auto view = VerifyInPlace(fids[i], lr, e.version, BufferKeeper(std::move(slice)),
                              parsed_ok[k] ? &parsed[k] : nullptr);
    if (m->Faulted()) {
      // The file was truncated under the mapping: what was read may be zeros. Never trust it.
      reader.Drop(e.volume_id);
      view = Error(Code::kStale, fmt::format("{}: volume {} was truncated during the read", fids[i],
                                             e.volume_id));
    } else if (!view && detail::Retryable(view.error())) {
      reader.Drop(e.volume_id);  // a failed check: open the volume afresh on the retry
    }
    if (view) {
      view->local_ = true;
      if (stamp_reads_) {
        view->issued_ = issued;
        view->verified_ = std::chrono::steady_clock::now();
      }
      if (emit != nullptr) {
        (*emit)(i, std::move(view));
        continue;
      }
    } else if (parsed_ok[k]) {
      reader.Forget(parsed[k]);
    }
    out[i] = std::move(view);
  }
  if (checked_which.empty()) return;
  // Erasure-coded needles: the agent assembles each from its shards and sends it over its read
  // port, checked like any other (the socket cannot hand out one file for them).
  if (!info_checked_reads_ || tcp_read_port_ == 0) {
    for (size_t i : checked_which) {
      out[i] = Error(Code::kUnsupported,
                     fmt::format("{}: is in an erasure-coded volume, which the agent serves by "
                                 "checked reads only, and it offers no read port (give it a "
                                 "--read-port, or use --fallback http)",
                                 fids[i]));
    }
    return;
  }
  CheckedRound(fids, checked_which, options, out, emit, /*over_tcp=*/true);
}

}  // namespace swrdma::client
