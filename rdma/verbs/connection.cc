#include "rdma/verbs/connection.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include "rdma/verbs/verbs_status.h"

namespace swrdma::rdma::verbs {
namespace {

// Owns one rdma_cm event until it is acknowledged (rdma_destroy_id waits for every event of
// its id to be acknowledged, so none may leak).
class Event {
 public:
  explicit Event(rdma_cm_event* event) : event_(event) {}
  Event(Event&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  Event& operator=(Event&&) = delete;
  ~Event() {
    if (event_ != nullptr) rdma_ack_cm_event(event_);
  }
  const rdma_cm_event* operator->() const { return event_; }

 private:
  rdma_cm_event* event_;
};

struct ChannelDeleter {
  void operator()(rdma_event_channel* channel) const { rdma_destroy_event_channel(channel); }
};
struct IdDeleter {
  void operator()(rdma_cm_id* id) const { rdma_destroy_id(id); }
};
struct QpDeleter {
  void operator()(ibv_qp* qp) const { ibv_destroy_qp(qp); }
};
using ChannelPtr = std::unique_ptr<rdma_event_channel, ChannelDeleter>;
using IdPtr = std::unique_ptr<rdma_cm_id, IdDeleter>;
using QpPtr = std::unique_ptr<ibv_qp, QpDeleter>;

Result<ChannelPtr> NewChannel() {
  errno = 0;
  rdma_event_channel* channel = rdma_create_event_channel();
  if (channel == nullptr) {
    return Error(FromErrno(errno != 0 ? errno : ENODEV,
                           "rdma_create_event_channel (is rdma_ucm loaded? /dev/infiniband/"
                           "rdma_cm must exist)"));
  }
  return ChannelPtr(channel);
}

Result<Event> WaitEvent(rdma_event_channel* channel, std::chrono::milliseconds timeout,
                        std::string_view what) {
  pollfd pfd{.fd = channel->fd, .events = POLLIN, .revents = 0};
  int rc = poll(&pfd, 1, static_cast<int>(timeout.count()));
  if (rc < 0) return Error(FromErrno(errno, std::string(what) + ": poll"));
  if (rc == 0) {
    return Error(Code::kTimeout, std::string(what) + ": no rdma_cm event within " +
                                     std::to_string(timeout.count()) + " ms");
  }
  rdma_cm_event* event = nullptr;
  if (rdma_get_cm_event(channel, &event) != 0) {
    return Error(FromErrno(errno, std::string(what) + ": rdma_get_cm_event"));
  }
  return Event(event);
}

// Ok when `event` is `expected`; otherwise what the event says went wrong.
Status Expect(const Event& event, rdma_cm_event_type expected, std::string_view what) {
  if (event->event == expected) return Status::Ok();
  std::string message = std::string(what) + ": expected " + rdma_event_str(expected) + ", got " +
                        rdma_event_str(event->event) + " (status " + std::to_string(event->status) +
                        ")";
  switch (event->event) {
    case RDMA_CM_EVENT_REJECTED:
      return Status(Code::kUnavailable,
                    message + "; the peer rejected the connection, or nothing listens there");
    case RDMA_CM_EVENT_ADDR_ERROR:
    case RDMA_CM_EVENT_ROUTE_ERROR:
    case RDMA_CM_EVENT_UNREACHABLE:
      return Status(Code::kUnavailable, message + "; no RDMA path to the peer");
    default:
      return Status(Code::kRdmaTransport, std::move(message));
  }
}

Result<sockaddr_storage> ResolveIp(const std::string& address, uint16_t port) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  if (int rc = getaddrinfo(address.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return Error(Code::kInvalidArgument,
                 "cannot resolve address " + address + ": " + gai_strerror(rc));
  }
  sockaddr_storage out{};
  std::memcpy(&out, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  return out;
}

const char* StateName(ibv_qp_state state) {
  switch (state) {
    case IBV_QPS_INIT:
      return "INIT";
    case IBV_QPS_RTR:
      return "RTR";
    case IBV_QPS_RTS:
      return "RTS";
    default:
      return "?";
  }
}

// Moves `qp` to `state` with the attributes rdma_cm worked out for `id`, except the ones this
// library decides: the remote access flags (always, at every step) and the READ depths.
Status MoveQp(rdma_cm_id* id, ibv_qp* qp, ibv_qp_state state, int remote_access,
              uint8_t responder_resources, uint8_t initiator_depth) {
  ibv_qp_attr attr{};
  int mask = 0;
  attr.qp_state = state;
  std::string what = std::string("moving the QP to ") + StateName(state);
  if (rdma_init_qp_attr(id, &attr, &mask) != 0) {
    return FromErrno(errno, what + ": rdma_init_qp_attr");
  }
  if (state == IBV_QPS_INIT || (mask & IBV_QP_ACCESS_FLAGS) != 0) {
    attr.qp_access_flags = static_cast<unsigned>(remote_access);
    mask |= IBV_QP_ACCESS_FLAGS;
  }
  if (state == IBV_QPS_RTR) {
    attr.max_dest_rd_atomic = responder_resources;
    mask |= IBV_QP_MAX_DEST_RD_ATOMIC;
  }
  if (state == IBV_QPS_RTS) {
    attr.max_rd_atomic = initiator_depth;
    mask |= IBV_QP_MAX_QP_RD_ATOMIC;
  }
  if (int rc = ibv_modify_qp(qp, &attr, mask); rc != 0) {
    return FromErrno(rc, what + ": ibv_modify_qp");
  }
  return Status::Ok();
}

Result<QpPtr> CreateQp(const ProtectionDomain& pd, const CompletionQueue& cq,
                       const ConnectionOptions& options) {
  ibv_qp_init_attr init{};
  init.send_cq = cq.get();
  init.recv_cq = cq.get();
  init.qp_type = IBV_QPT_RC;
  init.sq_sig_all = 0;
  init.cap.max_send_wr = options.max_send_wr;
  init.cap.max_recv_wr = std::max<uint32_t>(options.max_recv_wr, 1);
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  errno = 0;
  ibv_qp* qp = ibv_create_qp(pd.get(), &init);
  if (qp == nullptr) {
    return Error(FromErrno(
        errno != 0 ? errno : ENOMEM,
        "ibv_create_qp (RC, " + std::to_string(options.max_send_wr) + " send work requests)"));
  }
  return QpPtr(qp);
}

// The device's READ depth limits, so that what we offer never exceeds what it can do.
Result<std::pair<uint8_t, uint8_t>> DeviceDepths(ibv_context* context) {
  ibv_device_attr attr{};
  if (int rc = ibv_query_device(context, &attr); rc != 0) {
    return Error(FromErrno(rc, "ibv_query_device"));
  }
  return std::pair<uint8_t, uint8_t>{
      static_cast<uint8_t>(std::clamp(attr.max_qp_rd_atom, 0, 255)),
      static_cast<uint8_t>(std::clamp(attr.max_qp_init_rd_atom, 0, 255))};
}

Status CheckSameDevice(const ProtectionDomain& pd, rdma_cm_id* id, std::string_view where) {
  if (id->verbs == pd.context()) return Status::Ok();
  std::string route = id->verbs != nullptr ? ibv_get_device_name(id->verbs->device) : "none";
  std::string mine = pd.context() != nullptr ? ibv_get_device_name(pd.context()->device) : "none";
  return Status(Code::kInvalidArgument, std::string(where) + " goes through RDMA device " + route +
                                            " but the protection domain is on " + mine +
                                            "; open the device the address belongs to");
}

std::vector<uint8_t> CopyPrivateData(const rdma_conn_param& param) {
  const auto* bytes = static_cast<const uint8_t*>(param.private_data);
  if (bytes == nullptr) return {};
  return {bytes, bytes + param.private_data_len};
}

}  // namespace

// ------------------------------------------------------------------------------------ Listener

Result<Listener> Listener::Open(const std::string& address, uint16_t port, int backlog) {
  SWRDMA_ASSIGN_OR_RETURN(ChannelPtr channel, NewChannel());
  rdma_cm_id* raw = nullptr;
  if (rdma_create_id(channel.get(), &raw, nullptr, RDMA_PS_TCP) != 0) {
    return Error(FromErrno(errno, "rdma_create_id for the listener"));
  }
  IdPtr id(raw);
  SWRDMA_ASSIGN_OR_RETURN(sockaddr_storage sa, ResolveIp(address, port));
  std::string where = "rdma_cm listener on " + address + ":" + std::to_string(port);
  if (rdma_bind_addr(id.get(), reinterpret_cast<sockaddr*>(&sa)) != 0) {
    Status status = FromErrno(errno, where + ": rdma_bind_addr");
    if (errno == EADDRINUSE) return Error(Status(Code::kUnavailable, status.message()));
    return Error(status.WithContext("is the address on an RDMA-capable interface?"));
  }
  if (rdma_listen(id.get(), backlog) != 0) {
    return Error(FromErrno(errno, where + ": rdma_listen"));
  }
  return Listener(channel.release(), id.release());
}

Listener::Listener(Listener&& other) noexcept
    : channel_(std::exchange(other.channel_, nullptr)), id_(std::exchange(other.id_, nullptr)) {}

Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    Release();
    channel_ = std::exchange(other.channel_, nullptr);
    id_ = std::exchange(other.id_, nullptr);
  }
  return *this;
}

Listener::~Listener() {
  Release();
}

void Listener::Release() {
  if (id_ != nullptr) rdma_destroy_id(std::exchange(id_, nullptr));
  if (channel_ != nullptr) rdma_destroy_event_channel(std::exchange(channel_, nullptr));
}

uint16_t Listener::port() const {
  return ntohs(rdma_get_src_port(id_));
}

int Listener::fd() const {
  return channel_->fd;
}

Result<Connection> Listener::Accept(const ProtectionDomain& pd, const CompletionQueue& cq,
                                    std::span<const uint8_t> private_data,
                                    const ConnectionOptions& options) const {
  if (private_data.size() > kMaxAcceptPrivateData) {
    return Error(Code::kInvalidArgument,
                 "accept private data of " + std::to_string(private_data.size()) +
                     " bytes exceeds " + std::to_string(kMaxAcceptPrivateData));
  }
  SWRDMA_ASSIGN_OR_RETURN(Event request,
                          WaitEvent(channel_, options.timeout, "waiting for a connection"));
  if (request->event != RDMA_CM_EVENT_CONNECT_REQUEST) {
    return Error(Code::kUnavailable, std::string("listener: unexpected rdma_cm event ") +
                                         rdma_event_str(request->event));
  }
  // The connection's own event channel, declared before the id so that it outlives it on
  // every path (a channel cannot be destroyed while an id still uses it).
  Result<ChannelPtr> channel = NewChannel();
  // The new id is ours from here on: rejected and destroyed unless the connection is made.
  IdPtr id(request->id);
  std::vector<uint8_t> peer_data = CopyPrivateData(request->param.conn);
  // rdma_cm reports the peer's offer from our side: responder_resources is the READ depth the
  // peer will use against us (its initiator depth), initiator_depth what it will serve for us.
  uint8_t peer_wants_served = request->param.conn.responder_resources;
  uint8_t peer_serves = request->param.conn.initiator_depth;
  auto reject = [&](Status status) -> Result<Connection> {
    rdma_reject(id.get(), nullptr, 0);
    return Error(status.WithContext("accepting a connection"));
  };
  {
    Event acked = std::move(request);  // acknowledged here: migration needs no pending events
  }
  if (!channel) return reject(channel.error());
  if (rdma_migrate_id(id.get(), channel->get()) != 0) {
    return reject(FromErrno(errno, "rdma_migrate_id"));
  }
  if (Status same = CheckSameDevice(pd, id.get(), "the connection"); !same.ok()) {
    return reject(same);
  }
  auto depths = DeviceDepths(pd.context());
  if (!depths) return reject(depths.error());
  // We serve as many READs at once as the peer wants to issue, up to our option and the device.
  uint8_t responder = std::min({options.responder_resources, peer_wants_served, depths->first});
  uint8_t initiator = std::min({options.initiator_depth, peer_serves, depths->second});
  auto qp = CreateQp(pd, cq, options);
  if (!qp) return reject(qp.error());
  for (ibv_qp_state state : {IBV_QPS_INIT, IBV_QPS_RTR, IBV_QPS_RTS}) {
    if (Status moved =
            MoveQp(id.get(), qp->get(), state, options.remote_access, responder, initiator);
        !moved.ok()) {
      return reject(moved);
    }
  }
  rdma_conn_param param{};
  param.private_data = private_data.data();
  param.private_data_len = static_cast<uint8_t>(private_data.size());
  param.responder_resources = responder;
  param.initiator_depth = initiator;
  param.rnr_retry_count = 7;
  param.qp_num = (*qp)->qp_num;
  if (rdma_accept(id.get(), &param) != 0) return reject(FromErrno(errno, "rdma_accept"));
  SWRDMA_ASSIGN_OR_RETURN(Event established,
                          WaitEvent(channel->get(), options.timeout, "accepting a connection"));
  SWRDMA_RETURN_IF_ERROR(Expect(established, RDMA_CM_EVENT_ESTABLISHED, "accepting a connection"));
  return Connection(channel->release(), id.release(), qp->release(), std::move(peer_data),
                    initiator, options.max_send_wr);
}

// ---------------------------------------------------------------------------------- Connection

Result<Connection> Connection::Connect(const ProtectionDomain& pd, const CompletionQueue& cq,
                                       const std::string& address, uint16_t port,
                                       std::span<const uint8_t> private_data,
                                       const ConnectionOptions& options) {
  std::string peer = address + ":" + std::to_string(port);
  if (private_data.size() > kMaxConnectPrivateData) {
    return Error(Code::kInvalidArgument,
                 "connect private data of " + std::to_string(private_data.size()) +
                     " bytes exceeds " + std::to_string(kMaxConnectPrivateData));
  }
  SWRDMA_ASSIGN_OR_RETURN(ChannelPtr channel, NewChannel());
  rdma_cm_id* raw = nullptr;
  if (rdma_create_id(channel.get(), &raw, nullptr, RDMA_PS_TCP) != 0) {
    return Error(FromErrno(errno, "rdma_create_id to " + peer));
  }
  IdPtr id(raw);
  SWRDMA_ASSIGN_OR_RETURN(sockaddr_storage sa, ResolveIp(address, port));
  int timeout_ms = static_cast<int>(options.timeout.count());
  std::string what = "connecting to " + peer;
  if (rdma_resolve_addr(id.get(), nullptr, reinterpret_cast<sockaddr*>(&sa), timeout_ms) != 0) {
    return Error(FromErrno(errno, what + ": rdma_resolve_addr"));
  }
  {
    SWRDMA_ASSIGN_OR_RETURN(Event event, WaitEvent(channel.get(), options.timeout, what));
    SWRDMA_RETURN_IF_ERROR(Expect(event, RDMA_CM_EVENT_ADDR_RESOLVED, what));
  }
  if (rdma_resolve_route(id.get(), timeout_ms) != 0) {
    return Error(FromErrno(errno, what + ": rdma_resolve_route"));
  }
  {
    SWRDMA_ASSIGN_OR_RETURN(Event event, WaitEvent(channel.get(), options.timeout, what));
    SWRDMA_RETURN_IF_ERROR(Expect(event, RDMA_CM_EVENT_ROUTE_RESOLVED, what));
  }
  SWRDMA_RETURN_IF_ERROR(CheckSameDevice(pd, id.get(), "the route to " + peer));
  SWRDMA_ASSIGN_OR_RETURN(auto depths, DeviceDepths(pd.context()));
  uint8_t responder = std::min(options.responder_resources, depths.first);
  uint8_t initiator = std::min(options.initiator_depth, depths.second);
  SWRDMA_ASSIGN_OR_RETURN(QpPtr qp, CreateQp(pd, cq, options));
  SWRDMA_RETURN_IF_ERROR(
      MoveQp(id.get(), qp.get(), IBV_QPS_INIT, options.remote_access, responder, initiator));
  rdma_conn_param param{};
  param.private_data = private_data.data();
  param.private_data_len = static_cast<uint8_t>(private_data.size());
  param.responder_resources = responder;
  param.initiator_depth = initiator;
  param.retry_count = 7;
  param.rnr_retry_count = 7;
  param.qp_num = qp->qp_num;
  if (rdma_connect(id.get(), &param) != 0) {
    return Error(FromErrno(errno, what + ": rdma_connect"));
  }
  SWRDMA_ASSIGN_OR_RETURN(Event response, WaitEvent(channel.get(), options.timeout, what));
  SWRDMA_RETURN_IF_ERROR(Expect(response, RDMA_CM_EVENT_CONNECT_RESPONSE, what));
  std::vector<uint8_t> peer_data = CopyPrivateData(response->param.conn);
  // What the accepting side agreed to, reported from our side (see Accept): we issue no more
  // READs than it serves, and serve no more than it issues.
  initiator = std::min(initiator, response->param.conn.initiator_depth);
  responder = std::min(responder, response->param.conn.responder_resources);
  for (ibv_qp_state state : {IBV_QPS_RTR, IBV_QPS_RTS}) {
    SWRDMA_RETURN_IF_ERROR(
        MoveQp(id.get(), qp.get(), state, options.remote_access, responder, initiator));
  }
  // With a QP of our own, librdmacm leaves the last step (the RTU message) to us.
  if (rdma_establish(id.get()) != 0) return Error(FromErrno(errno, what + ": rdma_establish"));
  return Connection(channel.release(), id.release(), qp.release(), std::move(peer_data), initiator,
                    options.max_send_wr);
}

Connection::Connection(Connection&& other) noexcept
    : channel_(std::exchange(other.channel_, nullptr)),
      id_(std::exchange(other.id_, nullptr)),
      qp_(std::exchange(other.qp_, nullptr)),
      peer_data_(std::move(other.peer_data_)),
      initiator_depth_(other.initiator_depth_),
      send_queue_depth_(other.send_queue_depth_),
      gone_(other.gone_) {}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    Release();
    channel_ = std::exchange(other.channel_, nullptr);
    id_ = std::exchange(other.id_, nullptr);
    qp_ = std::exchange(other.qp_, nullptr);
    peer_data_ = std::move(other.peer_data_);
    initiator_depth_ = other.initiator_depth_;
    send_queue_depth_ = other.send_queue_depth_;
    gone_ = other.gone_;
  }
  return *this;
}

Connection::~Connection() {
  Release();
}

void Connection::Release() {
  if (id_ != nullptr) {
    rdma_disconnect(id_);  // also after the peer's: it completes the exchange
    // Acknowledge whatever is pending (rdma_destroy_id waits for that).
    if (channel_ != nullptr) {
      pollfd pfd{.fd = channel_->fd, .events = POLLIN, .revents = 0};
      while (poll(&pfd, 1, 0) > 0) {
        rdma_cm_event* event = nullptr;
        if (rdma_get_cm_event(channel_, &event) != 0) break;
        rdma_ack_cm_event(event);
      }
    }
  }
  if (qp_ != nullptr) ibv_destroy_qp(std::exchange(qp_, nullptr));
  if (id_ != nullptr) rdma_destroy_id(std::exchange(id_, nullptr));
  if (channel_ != nullptr) rdma_destroy_event_channel(std::exchange(channel_, nullptr));
}

namespace {

Status PostOne(ibv_qp* qp, ibv_wr_opcode opcode, void* local, size_t length, uint32_t lkey,
               uint64_t remote_address, uint32_t rkey, uint64_t wr_id, const char* what) {
  if (length > UINT32_MAX) {
    return Status(Code::kInvalidArgument, std::string(what) + " of " + std::to_string(length) +
                                              " bytes: one work request moves at most 4 GiB");
  }
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uintptr_t>(local);
  sge.length = static_cast<uint32_t>(length);
  sge.lkey = lkey;
  ibv_send_wr wr{};
  wr.wr_id = wr_id;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = opcode;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = remote_address;
  wr.wr.rdma.rkey = rkey;
  ibv_send_wr* bad = nullptr;
  if (int rc = ibv_post_send(qp, &wr, &bad); rc != 0) {
    return FromErrno(rc, std::string("posting ") + what + " of " + std::to_string(length) +
                             " bytes (ENOMEM: send queue full)");
  }
  return Status::Ok();
}

}  // namespace

Status Connection::PostRead(std::span<std::byte> local, uint32_t lkey, uint64_t remote_address,
                            uint32_t rkey, uint64_t wr_id) {
  return PostOne(qp_, IBV_WR_RDMA_READ, local.data(), local.size(), lkey, remote_address, rkey,
                 wr_id, "RDMA READ");
}

Status Connection::PostWrite(std::span<const std::byte> local, uint32_t lkey,
                             uint64_t remote_address, uint32_t rkey, uint64_t wr_id) {
  return PostOne(qp_, IBV_WR_RDMA_WRITE, const_cast<std::byte*>(local.data()), local.size(), lkey,
                 remote_address, rkey, wr_id, "RDMA WRITE");
}

Status Connection::Fail() {
  if (qp_ == nullptr) return Status(Code::kInvalidArgument, "no queue pair (moved from)");
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_ERR;
  if (int rc = ibv_modify_qp(qp_, &attr, IBV_QP_STATE); rc != 0) {
    return FromErrno(rc, "moving the queue pair to the error state");
  }
  return Status::Ok();
}

Status Connection::SetRemoteAccess(int remote_access) {
  if (qp_ == nullptr) return Status(Code::kInvalidArgument, "no queue pair (moved from)");
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_RTS;  // RTS -> RTS: the access flags may change, nothing else does
  attr.qp_access_flags = static_cast<unsigned>(remote_access);
  if (int rc = ibv_modify_qp(qp_, &attr, IBV_QP_STATE | IBV_QP_ACCESS_FLAGS); rc != 0) {
    return FromErrno(rc, "changing the queue pair's remote access flags");
  }
  return Status::Ok();
}

Result<int> Connection::QueryRemoteAccess() const {
  ibv_qp_attr attr{};
  ibv_qp_init_attr init{};
  if (int rc = ibv_query_qp(qp_, &attr, IBV_QP_ACCESS_FLAGS, &init); rc != 0) {
    return Error(FromErrno(rc, "ibv_query_qp"));
  }
  return static_cast<int>(attr.qp_access_flags);
}

Result<bool> Connection::PeerGone() {
  while (!gone_) {
    pollfd pfd{.fd = channel_->fd, .events = POLLIN, .revents = 0};
    int rc = poll(&pfd, 1, 0);
    if (rc < 0) return Error(FromErrno(errno, "polling the connection's rdma_cm events"));
    if (rc == 0) break;
    rdma_cm_event* event = nullptr;
    if (rdma_get_cm_event(channel_, &event) != 0) {
      return Error(FromErrno(errno, "rdma_get_cm_event"));
    }
    rdma_cm_event_type type = event->event;
    rdma_ack_cm_event(event);
    if (type == RDMA_CM_EVENT_DISCONNECTED || type == RDMA_CM_EVENT_DEVICE_REMOVAL ||
        type == RDMA_CM_EVENT_TIMEWAIT_EXIT || type == RDMA_CM_EVENT_CONNECT_ERROR) {
      gone_ = true;
    }
  }
  return gone_;
}

}  // namespace swrdma::rdma::verbs
