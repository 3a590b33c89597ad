// Test helpers for checked reads (client/checked_reads.h), shared by the tests of every
// transport that serves them (UCX active messages, the TCP read port, push): send a list of
// fids in batches and collect the answers; verify an arrival as a reader must.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "client/checked_reads.h"
#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "protocol/needle.h"

namespace swrdma::testing {

// Sends `fids` (with `tokens`, when given) in requests of `batch`, all at once, and collects
// every answer within `wait`. The first transport failure ends the collection: it is returned
// in `failure` when given, else it fails the test.
inline std::vector<client::CheckedArrival> ReadAllChecked(
    client::CheckedReads& reader, const std::vector<std::string>& fids,
    const std::vector<std::string>& tokens = {}, size_t batch = 64,
    std::chrono::seconds wait = std::chrono::seconds(30), Status* failure = nullptr) {
  std::vector<client::CheckedArrival> out;
  for (size_t first = 0; first < fids.size(); first += batch) {
    std::vector<ReadRequestEntry> entries;
    std::vector<size_t> tags;
    for (size_t i = first; i < std::min(fids.size(), first + batch); ++i) {
      entries.push_back({fids[i], tokens.empty() ? std::string() : tokens[i]});
      tags.push_back(i);
    }
    Status s = reader.Send(entries, tags, false);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  const auto deadline = rdma::DeadlineIn(wait);
  while (reader.outstanding() > 0) {
    Status s = reader.Poll(out, deadline);
    if (!s.ok()) {
      if (failure != nullptr) {
        *failure = s;
      } else {
        ADD_FAILURE() << s.ToString();
      }
      break;
    }
  }
  return out;
}

// The record's data, verified against the fid as a reader must (id, cookie, CRC; gunzipped).
inline Result<std::vector<uint8_t>> VerifyArrival(const client::CheckedArrival& a,
                                                  std::string_view fid) {
  SWRDMA_ASSIGN_OR_RETURN(FileId id, ParseFileId(fid));
  SWRDMA_ASSIGN_OR_RETURN(NeedleVersion v, ToNeedleVersion(a.header.needle_version));
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(a.record.data()),
                                 a.header.length);
  SWRDMA_ASSIGN_OR_RETURN(NeedleRecord record, ParseNeedleRecord(bytes, v));
  auto verified = VerifyNeedle(record, {.id = id.needle_id, .cookie = id.cookie});
  if (!verified) return Error(verified.error());
  std::vector<uint8_t> data(record.data.begin(), record.data.end());
  if (record.is_gzipped()) {
    SWRDMA_ASSIGN_OR_RETURN(data, Gunzip(data));
  }
  return data;
}

}  // namespace swrdma::testing
