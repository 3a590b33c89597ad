// Client::ReadEcPieces and Client::VerifyAssembled: the per-agent half of reading an erasure-coded
// needle whose data shards are spread over several volume servers (issue 16). Each holder's agent
// sends the parts of the record it holds (protocol/read_messages.h EcPieces); ClusterClient puts
// them together and has the whole record verified here, exactly as any read is.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "client/checked_reads.h"
#include "client/client_impl.h"
#include "client/client_internal.h"

namespace swrdma::client {
namespace {

// Pieces in one request: tokens make entries up to ~4 KiB, and a request stays far below
// kMaxReadRequestBytes.
constexpr size_t kPiecesBatch = 256;

Result<EcRecordPieces> FromArrival(std::string_view fid, CheckedArrival& a) {
  if (!a.error.ok()) {
    return Error(a.error.code(), fmt::format("{}: {}", fid, a.error.message()));
  }
  if (a.header.status != ReadStatus::kOk) {
    return Error(detail::RefusalToError(fid, a.header.status, a.reason));
  }
  EcRecordPieces out;
  out.needle_size = a.header.needle_size;
  out.needle_version = a.header.needle_version;
  const auto* data = reinterpret_cast<const uint8_t*>(a.record.data());
  const std::span<const uint8_t> bytes(data, static_cast<size_t>(a.header.length));
  if (!a.header.pieces) {  // held whole there: the record itself
    out.record_length = bytes.size();
    out.pieces.push_back({0, std::vector<uint8_t>(bytes.begin(), bytes.end())});
    return out;
  }
  auto view = DecodeEcPieces(bytes);
  if (!view) return Error(view.error().code(), fmt::format("{}: {}", fid, view.error().message()));
  out.record_length = view->record_length;
  size_t at = 0;
  for (const EcPiece& p : view->pieces) {
    const auto n = static_cast<size_t>(p.size);
    out.pieces.push_back(
        {p.record_offset,
         std::vector<uint8_t>(view->bytes.begin() + static_cast<ptrdiff_t>(at),
                              view->bytes.begin() + static_cast<ptrdiff_t>(at + n))});
    at += n;
  }
  return out;
}

}  // namespace

std::vector<Result<EcRecordPieces>> Client::Impl::ReadEcPieces(std::span<const std::string> fids,
                                                               const ReadOptions& options) {
  std::vector<Result<EcRecordPieces>> out;
  out.reserve(fids.size());
  for (size_t i = 0; i < fids.size(); ++i)
    out.emplace_back(std::unexpected(Status(Code::kInternal, "not answered")));
  auto fail = [&](size_t i, const Status& s) {
    out[i] = Error(s.code(), fmt::format("{}: {}", fids[i], s.message()));
  };
  // UCX (shared memory) when this client reads over it; the agent's TCP read port otherwise.
  const bool over_tcp = verbs_ != nullptr || use_tcp_reads_ || !endpoint_ || !worker_;
  if (!info_checked_reads_ || (over_tcp && tcp_read_port_ == 0)) {
    for (size_t i = 0; i < fids.size(); ++i)
      fail(i, Status(Code::kUnsupported,
                     "the agent offers no checked reads to this client (give it a --read-port)"));
    return out;
  }
  auto reader = Checked(over_tcp);
  if (!reader) {
    for (size_t i = 0; i < fids.size(); ++i)
      fail(i, reader.error());
    return out;
  }
  CheckedReads& r = **reader;
  std::vector<ReadRequestEntry> entries;
  std::vector<size_t> tags;
  std::vector<CheckedArrival> arrivals;
  std::vector<char> answered(fids.size(), 0);  // one for all batches: tags are fid indices
  for (size_t start = 0; start < fids.size(); start += kPiecesBatch) {
    const size_t n = std::min(kPiecesBatch, fids.size() - start);
    entries.clear();
    tags.clear();
    for (size_t i = start; i < start + n; ++i) {
      entries.push_back({fids[i], std::string(TokenFor(options, i))});
      tags.push_back(i);
    }
    if (Status s = r.Send(entries, tags, /*ec_pieces=*/true); !s.ok()) {
      for (size_t i : tags)
        fail(i, s);
      continue;
    }
    const rdma::Deadline deadline = rdma::DeadlineIn(options_.timeout);
    while (r.outstanding() > 0) {
      arrivals.clear();
      if (Status s = r.Poll(arrivals, deadline); !s.ok()) {
        r.Forget();
        for (size_t i : tags)
          if (!answered[i]) fail(i, s.WithContext("EC pieces"));
        break;
      }
      for (CheckedArrival& a : arrivals) {
        if (a.tag < start || a.tag >= start + n || answered[a.tag]) continue;
        answered[a.tag] = 1;
        out[a.tag] = FromArrival(fids[a.tag], a);
      }
    }
  }
  return out;
}

Result<NeedleData> Client::Impl::VerifyAssembled(std::string_view fid,
                                                 std::span<const uint8_t> record,
                                                 uint8_t needle_version, uint32_t needle_size,
                                                 const ReadOptions& options) {
  // Into a pool buffer, as every record is verified: the view that comes out holds it.
  SWRDMA_ASSIGN_OR_RETURN(rdma::BufferPool * pool, Pool());
  auto buffer = pool->Acquire(std::max<size_t>(record.size(), 1));
  if (!buffer) return Error(buffer.error().WithContext("a buffer for an assembled EC record"));
  std::memcpy(buffer->data(), record.data(), record.size());
  LookupResult where;
  where.length = record.size();
  where.size = needle_size;
  return ToNeedleData(fid, VerifyInPlace(fid, where, needle_version, std::move(*buffer)), options);
}

}  // namespace swrdma::client
