// Reads in the push exposure mode (docs/security.md): the agent never hands out keys to its
// memory. Each round registers nothing new: a landing buffer from the pool is described to the
// agent (address, length, rkey) with the fids and their read tokens in POST /v1/push; the agent
// checks the tokens, puts the records into the buffer with ucp_put_nbx, flushes, and answers
// where each record landed. Every record is then verified exactly as a get would be.
//
// On emulated transports (tcp, shared memory) the puts are messages our worker must receive:
// this thread progresses the worker while another waits for the HTTP answer.
#include <cstring>
#include <future>
#include <thread>

#include <fmt/format.h>

#include "client/client_impl.h"
#include "client/client_internal.h"
#include "protocol/wire.h"

namespace swrdma::client {
using detail::DecodeReply;
using detail::LookupStatusToError;

namespace {

constexpr size_t kLandingBytes = size_t{4} << 20;  // grows for larger records
constexpr size_t kPushChunk = 10'000;              // fids per request (the agent's default cap)
constexpr int kMaxPushRounds = 16;                 // no_room answers ask again

}  // namespace

Result<HttpReply> Client::Impl::RequestProgressing(std::string_view target, std::string body) {
  const std::string mime(MimeOf(WireFormat::kMsgpack));
  auto reply = std::async(std::launch::async,
                          [&] { return http_->Request("POST", target, body, mime, mime); });
  // The HTTP client has its own deadline; progress until its answer is in.
  while (reply.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    if (worker_->Progress() == 0) std::this_thread::yield();
  }
  return reply.get();
}

void Client::Impl::PushRound(std::span<const std::string> fids, std::span<const size_t> which,
                             const ReadOptions& options, ViewResults& out, const OnRead* emit) {
  auto fail_all = [&](std::span<const size_t> idx, const Status& s) {
    for (size_t i : idx)
      out[i] = Error(s.code(), fmt::format("{}: {}", fids[i], s.message()));
  };
  auto pool = Pool();
  if (!pool) return fail_all(which, pool.error());

  std::vector<size_t> pending(which.begin(), which.end());
  size_t want = std::max(kLandingBytes, push_landing_ ? push_landing_.size() : 0);
  for (int round = 0; !pending.empty() && round < kMaxPushRounds; ++round) {
    if (!push_landing_ || push_landing_.size() < want) {
      push_landing_.Release();
      auto landing = (*pool)->Acquire(want);
      if (!landing) return fail_all(pending, landing.error().WithContext("push landing buffer"));
      push_landing_ = std::move(*landing);
    }
    auto region = push_landing_.Describe();
    if (!region) return fail_all(pending, region.error().WithContext("push landing buffer"));

    const size_t n = std::min(kPushChunk, pending.size());
    PushRequest req;
    req.client_address = worker_->address();
    req.peer_failure = context_->shm_peer_failure();
    req.buffer_address = push_landing_.address();
    req.buffer_length = push_landing_.size();
    req.buffer_rkey = std::move(region->rkey);
    bool tokens = false;
    for (size_t k = 0; k < n; ++k) {
      req.fids.push_back(fids[pending[k]]);
      req.jwts.emplace_back(TokenFor(options, pending[k]));
      tokens = tokens || !req.jwts.back().empty();
    }
    if (!tokens) req.jwts.clear();
    ++stats_.lookups;
    const auto issued = std::chrono::steady_clock::now();
    auto tree =
        DecodeReply(RequestProgressing("/v1/push", EncodeBody(ToJson(req), WireFormat::kMsgpack)),
                    "POST /v1/push");
    Result<LookupResponse> resp = tree ? LookupResponseFromJson(*tree)
                                       : Result<LookupResponse>(std::unexpected(tree.error()));
    if (resp && resp->results.size() != n) {
      resp = Error(Code::kCorruption,
                   fmt::format("push answered {} results for {} fids", resp->results.size(), n));
    }
    const std::span<const size_t> chunk(pending.data(), n);
    if (!resp) {
      fail_all(chunk, resp.error());
      pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(n));
      continue;
    }

    std::vector<size_t> again;
    const uint64_t base = push_landing_.address();
    for (size_t k = 0; k < n; ++k) {
      const size_t i = pending[k];
      const LookupResult& r = resp->results[k];
      if (r.status == LookupStatus::kNoRoom) {
        again.push_back(i);
        want = std::max(want, static_cast<size_t>(r.length) + 8);
        continue;
      }
      if (r.status != LookupStatus::kOk) {
        out[i] = Error(LookupStatusToError(r));
        continue;
      }
      // The answer says where the record is; it must lie inside the buffer we offered.
      if (r.address < base || r.length > push_landing_.size() ||
          r.address - base > push_landing_.size() - r.length) {
        out[i] =
            Error(Code::kCorruption,
                  fmt::format("{}: the agent reported the record outside our buffer", fids[i]));
        continue;
      }
      // Copied into a buffer of its own so the landing buffer is free for the next round and the
      // view can outlive it.
      auto own = (*pool)->Acquire(static_cast<size_t>(r.length));
      if (!own) {
        out[i] = Error(own.error().code(), fmt::format("{}: {}", fids[i], own.error().message()));
        continue;
      }
      std::memcpy(own->data(), push_landing_.data() + (r.address - base), r.length);
      auto view = VerifyInPlace(fids[i], r, r.version, std::move(*own));
      if (view) {
        view->issued_ = issued;
        view->verified_ = std::chrono::steady_clock::now();
        if (emit != nullptr) {
          (*emit)(i, std::move(view));
          continue;
        }
      }
      out[i] = std::move(view);
    }
    again.insert(again.end(), pending.begin() + static_cast<ptrdiff_t>(n), pending.end());
    pending = std::move(again);
  }
  fail_all(pending, Status(Code::kResourceExhausted, "the agent kept answering no_room"));
}

}  // namespace swrdma::client
