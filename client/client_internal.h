// Helpers shared by the client's translation units (client.cc, checked_round.cc, read_round.cc);
// not a public API.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "client/agent_http.h"
#include "protocol/messages.h"
#include "protocol/read_messages.h"
#include "protocol/status.h"

namespace swrdma::client::detail {

// A lookup answer other than ok as the error a read reports ("<fid>: <why>").
Status LookupStatusToError(const LookupResult& r);
// A checked read's refusal as the error a read reports ("<fid>: <reason>").
Status RefusalToError(std::string_view fid, ReadStatus status, std::string_view reason);
// Failures a fresh lookup may cure (stale generation, transport trouble).
bool Retryable(const Status& s);
// The decoded body of a 200 reply, or the agent's error with a code by HTTP status (401 ->
// kPermissionDenied, 404 -> kNotFound, other 4xx -> kInvalidArgument, 5xx -> kUnavailable).
Result<nlohmann::json> DecodeReply(const Result<HttpReply>& reply, std::string_view what);

}  // namespace swrdma::client::detail
