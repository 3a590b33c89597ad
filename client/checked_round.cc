// Client::Impl::CheckedRound: a read round over checked reads (client/checked_reader.h), the data
// path whenever the agent serves them: no lookup, no key, one request per window of fids; the
// agent sends each record (or a per-fid refusal) and every record is verified in place.
#include <algorithm>

#include <fmt/format.h>

#include "client/checked_reader.h"
#include "client/client_impl.h"
#include "client/client_internal.h"
#include "client/tcp_checked_reader.h"

namespace swrdma::client {

Result<CheckedReads*> Client::Impl::Checked(bool over_tcp) {
  if (over_tcp) {
    if (!tcp_checked_) {
      SWRDMA_ASSIGN_OR_RETURN(rdma::BufferPool * pool, Pool());
      SWRDMA_ASSIGN_OR_RETURN(
          tcp_checked_,
          TcpCheckedReader::Connect(http_->url().host, tcp_read_port_, *pool, options_.timeout));
      // Push over verbs: each request offers a landing buffer on our verbs connection.
      if (verbs_ && verbs_->push())
        tcp_checked_->OfferLanding(*verbs_->landing_pool(), verbs_->nonce());
    }
    return tcp_checked_.get();
  }
  if (!endpoint_ || !worker_) {
    return Error(Code::kUnavailable, "not connected to the agent's UCX worker");
  }
  if (!checked_ || checked_endpoint_ != endpoint_->core()) {
    SWRDMA_ASSIGN_OR_RETURN(rdma::BufferPool * pool, Pool());
    checked_.reset();
    SWRDMA_ASSIGN_OR_RETURN(checked_, CheckedReader::Create(*worker_, *endpoint_, *pool));
    checked_endpoint_ = endpoint_->core();
  }
  return checked_.get();
}

void Client::Impl::CheckedRound(std::span<const std::string> fids, std::span<const size_t> which,
                                const ReadOptions& options, ViewResults& out, const OnRead* emit,
                                bool over_tcp) {
  auto reader = Checked(over_tcp);
  if (!reader) {
    for (size_t i : which)
      out[i] =
          Error(reader.error().code(), fmt::format("{}: {}", fids[i], reader.error().message()));
    return;
  }
  CheckedReads& r = **reader;
  const size_t window = std::max<size_t>(1, options_.max_inflight);
  // Tags are positions in `which`; `answered` catches a second answer (never sent by an agent).
  std::vector<char> answered(which.size(), 0);
  std::vector<NeedleView::TimePoint> issued(stamp_reads_ ? which.size() : 0);
  std::vector<ReadRequestEntry> entries;
  std::vector<size_t> tags;
  std::vector<CheckedArrival> arrivals;
  size_t next = 0;
  rdma::Deadline deadline = rdma::DeadlineIn(options_.timeout);

  auto deliver = [&](size_t k, Result<NeedleView> view) {
    answered[k] = 1;
    const size_t i = which[k];
    if (view && stamp_reads_) {
      view->issued_ = issued[k];
      view->verified_ = std::chrono::steady_clock::now();
    }
    if (view && emit != nullptr) {
      (*emit)(i, std::move(view));
      return;
    }
    out[i] = std::move(view);
  };
  auto fail_rest = [&](const Status& s) {
    for (size_t k = 0; k < which.size(); ++k) {
      if (!answered[k])
        deliver(k, Error(s.code(), fmt::format("{}: {}", fids[which[k]], s.message())));
    }
    r.Forget();
  };

  while (next < which.size() || r.outstanding() > 0) {
    // Keep `window` fids asked for: one request for whatever the window has room for.
    if (next < which.size() && r.outstanding() < window) {
      const size_t n = std::min({window - r.outstanding(), which.size() - next, kMaxReadBatch});
      entries.clear();
      tags.clear();
      const auto now = stamp_reads_ ? std::chrono::steady_clock::now() : NeedleView::TimePoint{};
      for (size_t k = next; k < next + n; ++k) {
        entries.push_back({fids[which[k]], std::string(TokenFor(options, which[k]))});
        tags.push_back(k);
        if (stamp_reads_) issued[k] = now;
      }
      next += n;
      if (Status s = r.Send(entries, tags, /*ec_pieces=*/false); !s.ok()) {
        for (size_t k : tags)
          deliver(k, Error(s.code(), fmt::format("{}: {}", fids[which[k]], s.message())));
        continue;
      }
      deadline = rdma::DeadlineIn(options_.timeout);
      if (r.outstanding() < window && next < which.size()) continue;  // fill before waiting
    }
    arrivals.clear();
    if (Status s = r.Poll(arrivals, deadline); !s.ok()) {
      fail_rest(s);
      return;
    }
    for (CheckedArrival& a : arrivals) {
      const size_t k = a.tag;
      if (k >= which.size() || answered[k]) continue;
      const std::string& fid = fids[which[k]];
      if (!a.error.ok()) {
        deliver(k, Error(a.error.code(), fmt::format("{}: {}", fid, a.error.message())));
        continue;
      }
      if (a.header.status != ReadStatus::kOk) {
        deliver(k, Error(detail::RefusalToError(fid, a.header.status, a.reason)));
        continue;
      }
      if (a.header.pieces) {
        deliver(k, Error(Code::kCorruption,
                         fmt::format("{}: the agent sent EC pieces that were not asked for", fid)));
        continue;
      }
      LookupResult where;
      where.volume_id = a.header.volume_id;
      where.generation = a.header.generation;
      where.length = a.header.length;
      where.size = a.header.needle_size;
      deliver(k, VerifyInPlace(fid, where, a.header.needle_version, std::move(a.record)));
    }
  }
}

}  // namespace swrdma::client
