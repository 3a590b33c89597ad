#include "rdma/ucx/ucx_endpoint.h"

#include <algorithm>
#include <sstream>
#include <utility>

#include "rdma/ucx/capture_output.h"
#include "rdma/ucx/ucx_status.h"

namespace swrdma::rdma {
namespace {

constexpr auto kDestructorCloseTimeout = std::chrono::seconds(1);

void OnEndpointError(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
  auto* core = static_cast<detail::EndpointCore*>(arg);
  if (core->failure.ok()) core->failure = FromUcs(status, "UCX endpoint failed (peer error)");
}

Result<ucp_ep_h> CreateEndpoint(detail::WorkerCore* worker, std::span<const uint8_t> address,
                                bool peer_mode, detail::EndpointCore* core) {
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  params.address = reinterpret_cast<const ucp_address_t*>(address.data());
  params.err_mode = peer_mode ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
  if (peer_mode) {
    params.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.err_handler.cb = OnEndpointError;
    params.err_handler.arg = core;
  }
  ucp_ep_h ep = nullptr;
  ucs_status_t status = ucp_ep_create(worker->handle, &params, &ep);
  if (status != UCS_OK) {
    return Error(
        FromUcs(status, std::string("connecting to the remote UCX worker (ucp_ep_create, ") +
                            (peer_mode ? "peer error handling" : "no error handling") + ")"));
  }
  return ep;
}

// Progresses until `request` (a status pointer from a *_nbx call without callback) completes or
// the deadline passes. Complete: frees it, returns its status. Timeout: hands it to the worker
// (released when UCX completes it) and returns UCS_ERR_TIMED_OUT.
ucs_status_t WaitRequest(detail::WorkerCore* worker, ucs_status_ptr_t request, Deadline deadline) {
  if (request == nullptr) return UCS_OK;
  if (UCS_PTR_IS_ERR(request)) return UCS_PTR_STATUS(request);
  ucs_status_t status;
  while ((status = ucp_request_check_status(request)) == UCS_INPROGRESS) {
    if (Clock::now() >= deadline) {
      worker->abandoned_requests.push_back(request);
      return UCS_ERR_TIMED_OUT;
    }
    worker->Progress();
  }
  ucp_request_free(request);
  return status;
}

// "0:tcp/lo.0" -> transport "tcp", device "lo".
bool ParseResource(std::string_view token, EndpointLane& lane) {
  size_t colon = token.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view resource = token.substr(colon + 1);
  size_t slash = resource.find('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  lane.transport = std::string(resource.substr(0, slash));
  std::string_view device = resource.substr(slash + 1);
  // A trailing ".<path index>" is UCX's path number, not part of the device name.
  size_t dot = device.rfind('.');
  if (dot != std::string_view::npos && dot + 1 < device.size() &&
      std::all_of(device.begin() + dot + 1, device.end(),
                  [](char c) { return c >= '0' && c <= '9'; })) {
    device = device.substr(0, dot);
  }
  lane.device = std::string(device);
  return true;
}

}  // namespace

std::vector<std::string> EndpointTransports::names() const {
  std::vector<std::string> out;
  for (const EndpointLane& lane : lanes) {
    if (std::find(out.begin(), out.end(), lane.transport) == out.end())
      out.push_back(lane.transport);
  }
  return out;
}

std::vector<std::string> EndpointTransports::rma_names() const {
  std::vector<std::string> out;
  for (const EndpointLane& lane : lanes) {
    bool rma = std::any_of(lane.uses.begin(), lane.uses.end(), [](const std::string& use) {
      return use == "rma" || use.starts_with("rma_bw");
    });
    if (rma && std::find(out.begin(), out.end(), lane.transport) == out.end()) {
      out.push_back(lane.transport);
    }
  }
  return out;
}

std::string EndpointTransports::Summary() const {
  std::string out;
  for (const EndpointLane& lane : lanes) {
    if (!out.empty()) out += ' ';
    out += lane.transport + "/" + lane.device + "[";
    for (size_t i = 0; i < lane.uses.size(); ++i) {
      if (i > 0) out += ',';
      out += lane.uses[i];
    }
    out += ']';
  }
  return out;
}

// A lane line looks like (UCX 1.13):
//   "#   lane[0]:  0:tcp/lo.0 md[0]   -> md[0]/tcp/sysdev[255] rma_bw#0 am am_bw#0 wireup"
// i.e. the local resource "<rsc index>:<tl>/<dev>", memory domains, "->", the remote side, then
// what the lane is used for.
Result<EndpointTransports> ParseEndpointInfo(std::string_view text) {
  EndpointTransports out;
  out.raw = std::string(text);
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    size_t at = line.find("lane[");
    if (at == std::string::npos) continue;
    size_t close = line.find("]:", at);
    if (close == std::string::npos) continue;
    EndpointLane lane;
    try {
      lane.index = std::stoi(line.substr(at + 5, close - at - 5));
    } catch (...) {
      continue;  // not a lane line after all
    }
    std::istringstream tokens(line.substr(close + 2));
    std::string token;
    if (!(tokens >> token) || !ParseResource(token, lane)) continue;
    bool after_arrow = false;
    bool after_remote = false;
    while (tokens >> token) {
      if (token == "->") {
        after_arrow = true;
      } else if (after_arrow && !after_remote) {
        after_remote = true;  // "md[0]/tcp/sysdev[255]": the remote resource
      } else if (after_remote) {
        lane.uses.push_back(token);
      }
    }
    out.lanes.push_back(std::move(lane));
  }
  if (out.lanes.empty()) {
    return Error(Code::kInternal,
                 "parsing ucp_ep_print_info: no lane lines found (UCX output format changed?): " +
                     out.raw.substr(0, 400));
  }
  return out;
}

Result<UcxEndpoint> UcxEndpoint::Connect(UcxWorker& worker, std::span<const uint8_t> remote_address,
                                         const UcxEndpointOptions& options) {
  if (worker.core() == nullptr) {
    return Error(Code::kInvalidArgument,
                 "connecting UCX endpoint: the worker is empty (moved from)");
  }
  if (remote_address.empty()) {
    return Error(Code::kInvalidArgument,
                 "connecting UCX endpoint: the remote worker address is empty");
  }
  auto core = std::make_unique<detail::EndpointCore>();
  core->worker = worker.core();

  Result<ucp_ep_h> ep = Error(Code::kInternal, "unreachable");
  if (options.error_handling != PeerErrorHandling::kNone) {
    ep = CreateEndpoint(core->worker, remote_address, /*peer_mode=*/true, core.get());
    core->peer_error_handling = ep.has_value();
    bool refused = !ep && ep.error().code() == Code::kRdmaTransport;
    if (!ep && (options.error_handling == PeerErrorHandling::kRequirePeer || !refused)) {
      return Error(ep.error());
    }
  }
  if (!core->peer_error_handling) {
    ep = CreateEndpoint(core->worker, remote_address, /*peer_mode=*/false, core.get());
    if (!ep) return Error(ep.error());
  }
  core->handle = *ep;
  UcxEndpoint endpoint(std::move(core));

  if (options.connect_timeout.count() > 0) {
    // A flush completes once wireup has finished and nothing is outstanding.
    ucp_request_param_t param{};
    ucs_status_t status =
        WaitRequest(endpoint.core_->worker, ucp_ep_flush_nbx(endpoint.get(), &param),
                    DeadlineIn(options.connect_timeout));
    if (status == UCS_OK && !endpoint.core_->failure.ok()) return Error(endpoint.core_->failure);
    if (status != UCS_OK) {
      return Error(FromUcs(status,
                           "connecting UCX endpoint: waiting for wireup with the remote "
                           "worker (is it running and progressing?)"));
    }
  }
  return endpoint;
}

UcxEndpoint& UcxEndpoint::operator=(UcxEndpoint&& other) noexcept {
  if (this != &other) {
    if (core_) Close(CloseMode::kFlush, DeadlineIn(kDestructorCloseTimeout)).IgnoreError();
    core_ = std::move(other.core_);
  }
  return *this;
}

UcxEndpoint::~UcxEndpoint() {
  if (core_) Close(CloseMode::kFlush, DeadlineIn(kDestructorCloseTimeout)).IgnoreError();
}

Status UcxEndpoint::status() const {
  if (!core_) return Status(Code::kInvalidArgument, "UCX endpoint is empty (moved from)");
  if (!core_->failure.ok()) return core_->failure;
  if (core_->handle == nullptr) return Status(Code::kUnavailable, "UCX endpoint is closed");
  return Status::Ok();
}

Result<EndpointTransports> UcxEndpoint::Transports() const {
  if (!core_ || core_->handle == nullptr) {
    return Error(Code::kUnavailable, "querying UCX endpoint transports: the endpoint is closed");
  }
  return ParseEndpointInfo(PrintInfo());
}

std::string UcxEndpoint::PrintInfo() const {
  if (!core_ || core_->handle == nullptr) return {};
  ucp_ep_h ep = core_->handle;
  return CaptureOutput([ep](FILE* stream) { ucp_ep_print_info(ep, stream); });
}

Status UcxEndpoint::Close(CloseMode mode, Deadline deadline) {
  if (!core_) return Status::Ok();
  return detail::CloseEndpoint(*core_, mode == CloseMode::kForce, deadline);
}

void UcxEndpoint::Abort(const Status& reason) {
  if (core_) detail::AbortEndpoint(*core_, reason);
}

namespace detail {

Status CloseEndpoint(EndpointCore& core, bool force, Deadline deadline) {
  if (core.handle == nullptr) return Status::Ok();
  // After a peer failure UCX requires a force close. Without peer error handling the failure was
  // recorded by AbortEndpoint, and a flush close keeps the endpoint alive until late replies to
  // abandoned gets have arrived (UCX's reply handler still uses the endpoint).
  force = force || (!core.failure.ok() && core.peer_error_handling);
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0;
  ucs_status_ptr_t request = ucp_ep_close_nbx(core.handle, &param);
  // The handle is gone from here on, whatever the outcome.
  core.handle = nullptr;
  ucs_status_t status = WaitRequest(core.worker, request, deadline);
  if (status == UCS_OK || (force && status == UCS_ERR_CANCELED)) return Status::Ok();
  // Closing an endpoint whose peer already failed reports that failure again; not news.
  if (!core.failure.ok() && status != UCS_ERR_TIMED_OUT) return Status::Ok();
  return FromUcs(status, force ? "force-closing UCX endpoint" : "closing UCX endpoint (flush)");
}

void AbortEndpoint(EndpointCore& core, const Status& reason) {
  if (core.failure.ok()) core.failure = reason;
  // Force closing is only safe with peer error handling: it completes outstanding operations
  // with UCS_ERR_CANCELED. Without it, outstanding gets are not completed and a late reply would
  // reach a destroyed endpoint inside UCX, so the endpoint stays open (refusing new gets) until
  // its owner closes it with a flush.
  if (core.peer_error_handling) {
    CloseEndpoint(core, /*force=*/true, DeadlineIn(kDestructorCloseTimeout)).IgnoreError();
  }
}

}  // namespace detail

}  // namespace swrdma::rdma
