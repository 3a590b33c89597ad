#include "rdma/ucx/put.h"

#include <fmt/format.h>

#include "rdma/ucx/ucx_status.h"

namespace swrdma::rdma {
namespace {

// After aborting an endpoint with peer error handling, how long to wait for the callbacks UCX
// owes (a force close completes them at once; slack, not an expected delay).
constexpr auto kAbortGrace = std::chrono::seconds(2);
constexpr auto kAbortGraceNoErrorHandling = std::chrono::milliseconds(20);

// Shared by every request of one PutAndFlush; heap-allocated so that it can outlive the call when
// UCX still owes callbacks.
struct PutState {
  size_t pending = 0;
  Status first_error;
  bool abandoned = false;
  detail::WorkerCore* worker = nullptr;
  std::shared_ptr<const void> keep_alive;

  void Done(Status s) {
    if (!s.ok() && first_error.ok()) first_error = std::move(s);
    --pending;
  }
};

void OnComplete(void* request, ucs_status_t status, void* user_data) {
  auto* state = static_cast<PutState*>(user_data);
  ucp_request_free(request);  // the callback ran: now the request may go back to UCX
  state->Done(FromUcs(status, "ucp_put_nbx / ucp_ep_flush_nbx"));
  if (state->abandoned && state->pending == 0) state->worker->DestroyAbandoned(state);
}

// Accounts for one posted operation's immediate outcome.
void Track(PutState& state, ucs_status_ptr_t request, std::string_view what) {
  ++state.pending;
  if (request == nullptr) {
    state.Done(Status::Ok());
  } else if (UCS_PTR_IS_ERR(request)) {
    state.Done(FromUcs(UCS_PTR_STATUS(request), std::string(what)));
  }
}

}  // namespace

Status PutAndFlush(UcxEndpoint& endpoint, const RemoteKey& rkey, std::span<const PutOp> ops,
                   Deadline deadline, std::shared_ptr<const void> keep_alive) {
  detail::EndpointCore* ep = endpoint.core();
  if (ep == nullptr || ep->handle == nullptr) {
    return Status(Code::kUnavailable, "ucp_put_nbx: the UCX endpoint is closed");
  }
  if (!ep->failure.ok()) return ep->failure.WithContext("ucp_put_nbx");
  for (const PutOp& op : ops) {
    SWRDMA_RETURN_IF_ERROR(rkey.CheckRange(op.remote_address, op.length));
  }

  auto state = std::make_unique<PutState>();
  state->worker = ep->worker;
  state->keep_alive = std::move(keep_alive);
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = &OnComplete;
  param.user_data = state.get();
  for (const PutOp& op : ops) {
    if (op.length == 0) continue;
    Track(*state,
          ucp_put_nbx(ep->handle, op.source, op.length, op.remote_address, rkey.get(), &param),
          "ucp_put_nbx");
    if (!state->first_error.ok()) break;
  }
  // Remote completion of everything posted: the answer to the client must not overtake its data.
  if (state->first_error.ok()) {
    Track(*state, ucp_ep_flush_nbx(ep->handle, &param), "ucp_ep_flush_nbx");
  }

  while (state->pending > 0 && Clock::now() < deadline)
    ep->worker->Progress();
  if (state->pending == 0) return state->first_error;

  Status reason(Code::kTimeout,
                fmt::format("{} puts/flush into the client's buffer did not complete in time; the "
                            "endpoint was aborted (is the client progressing its worker?)",
                            state->pending));
  const bool peer_mode = ep->peer_error_handling;
  detail::AbortEndpoint(*ep, reason);
  const Deadline grace =
      DeadlineIn(peer_mode ? Clock::duration(kAbortGrace) : kAbortGraceNoErrorHandling);
  while (state->pending > 0 && Clock::now() < grace)
    ep->worker->Progress();
  if (state->pending > 0) {
    // UCX still owes callbacks: the last one deletes the state (and releases keep_alive).
    PutState* abandoned = state.release();
    abandoned->abandoned = true;
    abandoned->worker->abandoned_objects.push_back(
        {abandoned, [](void* object) { delete static_cast<PutState*>(object); }});
  }
  return reason;
}

}  // namespace swrdma::rdma
