// Fuzzes the read-token verifier's messages (agent/token_verifier.h). The verifier holds the read
// key and reads requests from the data plane, which a peer may have taken over: its parser is
// the key's last line. Input: 1 selector byte, then
//   selector even: a request, answered by AnswerVerifierRequest with a real key
//                  ("fuzz-read-key"): the answer always decodes, echoes the request's op and id
//                  when the request decodes, and says ok to a verify only for a token that
//                  VerifyReadJwt accepts with that key;
//   selector odd:  a reply, as the data plane decodes it: ok or an error, never a crash.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <source_location>
#include <span>

#include "agent/read_auth.h"
#include "agent/token_verifier.h"
#include "fuzz/fuzz_check.h"
#include "protocol/jwt.h"

namespace {

using namespace swrdma;

using swrdma::fuzz::Check;

agent::ReadAuthorizer& Authorizer() {
  static std::unique_ptr<agent::ReadAuthorizer> auth = [] {
    agent::ReadKeySource source;
    source.key = "fuzz-read-key";
    auto opened = agent::ReadAuthorizer::Open(source);
    Check(opened.has_value());
    return std::move(*opened);
  }();
  return *auth;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::span<const uint8_t> body(data + 1, size - 1);
  if ((data[0] & 1) != 0) {
    auto reply = agent::DecodeVerifierReply(body);
    if (reply) Check(agent::DecodeVerifierReply(agent::EncodeVerifierReply(*reply)).has_value());
    return 0;
  }
  auto valid_now = [&](const agent::VerifierRequest& r) {
    return VerifyReadJwt(r.token, "fuzz-read-key", std::chrono::system_clock::now()).has_value();
  };
  auto request = agent::DecodeVerifierRequest(body);
  const bool valid_before = request && valid_now(*request);
  const auto answer_bytes = agent::AnswerVerifierRequest(body, Authorizer());
  auto answer = agent::DecodeVerifierReply(answer_bytes);
  Check(answer.has_value());
  Check(answer->enabled);
  if (!request) {
    Check(answer->status == agent::VerdictStatus::kBadRequest);
    return 0;
  }
  Check(answer->op == request->op && answer->id == request->id);
  if (request->op == agent::VerifierOp::kVerify) {
    // Valid before and after the answer: ok; invalid both times: refused (a token whose exp
    // passed in between may go either way).
    const bool valid_after = valid_now(*request);
    const bool ok = answer->status == agent::VerdictStatus::kOk;
    if (valid_before && valid_after) Check(ok);
    if (!valid_before && !valid_after) Check(!ok);
  }
  return 0;
}
