#include "agent/read_server.h"

#include <array>
#include <future>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <ucp/api/ucp.h>

#include "agent/checked_read.h"
#include "protocol/read_messages.h"
#include "rdma/ucx/ucx_status.h"

namespace swrdma::agent {

struct ReadServer::Counters {
  std::atomic<uint64_t> requests{0}, malformed{0}, replies_ok{0}, replies_refused{0}, denied{0},
      bytes{0}, send_failures{0}, inflight{0};
};

namespace {

// One reply in flight: its header and whatever the data points into must live until UCX is done
// (UCX 1.13 copies neither before completion for zero-copy and rendezvous sends).
struct Reply {
  std::array<uint8_t, kReadReplyHeaderBytes> header{};
  std::shared_ptr<const ExportedVolume> source;           // the mapping the record is sent from
  std::shared_ptr<const std::vector<uint8_t>> assembled;  // or the EC record it is sent from
  std::string reason;                                     // the data of a refusal
  // Set only while the send is in flight (its callback counts into them).
  std::shared_ptr<ReadServer::Counters> counters;
};

void OnReplySent(void* request, ucs_status_t status, void* user_data) {
  auto* reply = static_cast<Reply*>(user_data);
  if (status != UCS_OK) reply->counters->send_failures.fetch_add(1, std::memory_order_relaxed);
  reply->counters->inflight.fetch_sub(1, std::memory_order_relaxed);
  delete reply;
  ucp_request_free(request);
}

}  // namespace

// What the AM callback needs; owned by the server, registered as the handler's argument.
// Called on the progress thread only.
struct Handler {
  const VolumeSet* volumes;
  const ReadAuthorizer* auth;
  std::shared_ptr<ReadServer::Counters> counters;
  // Replies whose send completed at once (most small ones: UCX copied them), kept for the next:
  // a reply then costs no allocation and no reference count of the counters.
  std::vector<std::unique_ptr<Reply>> spare;

  std::unique_ptr<Reply> NewReply() {
    if (spare.empty()) return std::make_unique<Reply>();
    auto r = std::move(spare.back());
    spare.pop_back();
    return r;
  }
  void Recycle(std::unique_ptr<Reply> r) {
    r->source.reset();
    r->assembled.reset();
    r->reason.clear();
    if (spare.size() < 64) spare.push_back(std::move(r));
  }

  void Send(ucp_ep_h ep, std::unique_ptr<Reply> reply, const void* data, size_t length) {
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    // A record goes out from the export's own registration: UCX then neither registers the
    // mapping again (its cache would pin a region across the whole file) nor needs one at
    // shutdown.
    if (reply->source != nullptr && reply->source->memh() != nullptr) {
      param.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMH;
      param.memh = reply->source->memh();
    }
    param.cb.send = &OnReplySent;
    param.user_data = reply.get();
    ucs_status_ptr_t sent = ucp_am_send_nbx(ep, kReadReplyAmId, reply->header.data(),
                                            reply->header.size(), data, length, &param);
    if (sent == nullptr) {  // done already; the callback is not called
      Recycle(std::move(reply));
      return;
    }
    if (UCS_PTR_IS_ERR(sent)) {
      counters->send_failures.fetch_add(1, std::memory_order_relaxed);
      Recycle(std::move(reply));
      return;
    }
    // In flight: its callback runs later on this thread (from progress), never before this
    // returns, so the counters are set in time.
    reply->counters = counters;
    counters->inflight.fetch_add(1, std::memory_order_relaxed);
    (void)reply.release();  // OnReplySent frees it
  }

  void Refuse(ucp_ep_h ep, const ReadRequest& request, uint32_t index, ReadStatus status,
              uint32_t volume_id, std::string reason) {
    auto reply = NewReply();
    reply->reason = std::move(reason);
    EncodeReadReplyHeader({.status = status,
                           .request_id = request.request_id,
                           .index = index,
                           .volume_id = volume_id,
                           .length = reply->reason.size()},
                          reply->header);
    counters->replies_refused.fetch_add(1, std::memory_order_relaxed);
    if (status == ReadStatus::kDenied) counters->denied.fetch_add(1, std::memory_order_relaxed);
    const std::string& r = reply->reason;
    Send(ep, std::move(reply), r.data(), r.size());
  }

  void Serve(ucp_ep_h ep, const ReadRequest& request) {
    const auto map = volumes->snapshot();  // one snapshot for the batch
    for (uint32_t i = 0; i < request.entries.size(); ++i) {
      CheckedRecord c = CheckRead(*volumes, *map, auth, request.entries[i], request.ec_pieces);
      if (c.status != ReadStatus::kOk) {
        Refuse(ep, request, i, c.status, c.volume_id, std::move(c.reason));
        continue;
      }
      auto reply = NewReply();
      EncodeReadReplyHeader(c.Header(request.request_id, i), reply->header);
      const std::span<const uint8_t> data = c.record;
      reply->source = std::move(c.source);
      reply->assembled = std::move(c.assembled);
      counters->replies_ok.fetch_add(1, std::memory_order_relaxed);
      counters->bytes.fetch_add(data.size(), std::memory_order_relaxed);
      Send(ep, std::move(reply), data.data(), data.size());
    }
  }

  static ucs_status_t OnRequest(void* arg, const void* /*header*/, size_t /*header_length*/,
                                void* data, size_t length, const ucp_am_recv_param_t* param) {
    auto* self = static_cast<Handler*>(arg);
    // Requests come eager (the client sends them so); a rendezvous request would make us fetch
    // a peer-chosen amount of data: refused, its descriptor released by returning UCS_OK.
    if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) ||
        !(param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) || param->reply_ep == nullptr) {
      self->counters->malformed.fetch_add(1, std::memory_order_relaxed);
      return UCS_OK;
    }
    auto request = DecodeReadRequest({static_cast<const uint8_t*>(data), length});
    if (!request) {
      self->counters->malformed.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("checked read: {}", request.error().ToString());
      return UCS_OK;
    }
    self->counters->requests.fetch_add(1, std::memory_order_relaxed);
    self->Serve(param->reply_ep, *request);
    return UCS_OK;
  }
};

namespace {
Status SetHandler(ucp_worker_h worker, Handler* handler) {
  ucp_am_handler_param_t p{};
  p.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                 UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
  p.id = kReadRequestAmId;
  p.flags = UCP_AM_FLAG_WHOLE_MSG;
  p.cb = handler != nullptr ? &Handler::OnRequest : nullptr;
  p.arg = handler;
  return rdma::FromUcs(ucp_worker_set_am_recv_handler(worker, &p),
                       "registering the checked-read handler (ucp_worker_set_am_recv_handler)");
}

// Every other user AM id gets a handler that drops the message. UCX 1.13 indexes its handler
// array with the id a peer sends before checking it against the array's length
// (ucp_am_handler_common in src/ucp/core/ucp_am.c reads am_cb->flags first): an id beyond the
// highest one registered reads past the array, and a peer sending id 0xffff crashed the agent
// (tests/hostile_peer). With a handler at every id the array spans all 65536 and nothing is
// logged per unknown message (UCX warns once per message otherwise: a log flood).
ucs_status_t DropMessage(void*, const void*, size_t, void*, size_t, const ucp_am_recv_param_t*) {
  return UCS_OK;
}

Status SetDropHandlers(ucp_worker_h worker) {
  ucp_am_handler_param_t p{};
  p.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                 UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
  p.flags = UCP_AM_FLAG_WHOLE_MSG;
  p.cb = &DropMessage;
  p.arg = nullptr;
  // Highest first: the array grows once.
  for (uint32_t id = 0xffff + 1; id-- > 0;) {
    if (id == kReadRequestAmId) continue;
    p.id = static_cast<uint16_t>(id);
    SWRDMA_RETURN_IF_ERROR(rdma::FromUcs(ucp_worker_set_am_recv_handler(worker, &p),
                                         "registering the drop handler for unknown AM ids"));
  }
  return Status::Ok();
}

// Runs `fn` on the progress thread and waits for its status.
Status OnProgressThread(ProgressThread& progress, std::function<Status(rdma::UcxWorker&)> fn) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto done = promise->get_future();
  SWRDMA_RETURN_IF_ERROR(
      progress.Post([promise, fn](rdma::UcxWorker& w) { promise->set_value(fn(w)); }));
  if (done.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return Status(Code::kTimeout, "the progress thread did not run the task within 10 s");
  }
  try {
    return done.get();
  } catch (const std::future_error&) {
    return Status(Code::kUnavailable, "the progress thread stopped");
  }
}
}  // namespace

ReadServer::ReadServer(ProgressThread& progress)
    : progress_(progress), counters_(std::make_shared<Counters>()) {}

Result<std::unique_ptr<ReadServer>> ReadServer::Start(ProgressThread& progress,
                                                      const VolumeSet& volumes,
                                                      const ReadAuthorizer* auth) {
  std::unique_ptr<ReadServer> server(new ReadServer(progress));
  auto* handler = new Handler{&volumes, auth, server->counters_};
  server->handler_ = handler;
  Status s = OnProgressThread(progress, [handler](rdma::UcxWorker& w) -> Status {
    SWRDMA_RETURN_IF_ERROR(SetDropHandlers(w.get()));
    return SetHandler(w.get(), handler);
  });
  if (!s.ok()) return Error(s.WithContext("starting checked reads"));
  server->registered_ = true;
  return server;
}

uint64_t ReadServer::Shutdown() {
  if (!registered_) return counters_->inflight.load(std::memory_order_relaxed);
  registered_ = false;
  // Unregister, then let replies in flight finish or fail. UCX 1.13 aborts the process when a
  // worker is destroyed with sends still attached to an endpoint, and a client that died without
  // its endpoint failing (yet) leaves them there: the caller then leaks the worker
  // (ProgressThread::LeakWorker). UCX does not let us close the reply endpoints it created.
  Status s = OnProgressThread(progress_, [counters = counters_](rdma::UcxWorker& w) {
    Status unset = SetHandler(w.get(), nullptr);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (counters->inflight.load(std::memory_order_relaxed) > 0 &&
           std::chrono::steady_clock::now() < until) {
      w.Progress();
    }
    return unset;
  });
  if (!s.ok() && s.code() == Code::kTimeout) {
    // The thread is stuck in UCX and may still call the handler: leak it rather than free what
    // a callback could touch. The process is stopping.
    spdlog::warn("checked reads: {}; leaving the handler in place", s.ToString());
    handler_ = nullptr;
  }
  const uint64_t left = counters_->inflight.load(std::memory_order_relaxed);
  if (left > 0) {
    spdlog::info(
        "checked reads: {} replies to vanished clients still unsent at shutdown; the "
        "UCX worker is left to the process exit",
        left);
  }
  return left;
}

ReadServer::~ReadServer() {
  (void)Shutdown();
  delete static_cast<Handler*>(handler_);
}

ReadServerStats ReadServer::stats() const {
  const Counters& c = *counters_;
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {get(c.requests), get(c.malformed), get(c.replies_ok),    get(c.replies_refused),
          get(c.denied),   get(c.bytes),     get(c.send_failures), get(c.inflight)};
}

}  // namespace swrdma::agent
