// RC connections set up through rdma_cm: a Listener on the exporting side (the agent), a
// connector on the reading side (the client), and the Connection both end up with.
//
// Both sides create and move their queue pair themselves (rdma_cm only supplies the path and
// exchanges the connection messages) so that the QP's remote access flags are exactly what the
// caller asked for at every step. The kernel's rdma_cm would otherwise enable REMOTE_WRITE (and
// REMOTE_READ | REMOTE_ATOMIC) on every RC QP it initialises; librdmacm's own QP handling resets
// the flags to those defaults on the way to RTR. The exporting side asks for
// IBV_ACCESS_REMOTE_READ only, so its responder refuses RDMA WRITE and atomics on any memory,
// whatever a registration allows.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "protocol/status.h"
#include "rdma/verbs/completion_queue.h"
#include "rdma/verbs/device.h"

namespace swrdma::rdma::verbs {

// RDMA CM private data limits for RC over InfiniBand / RoCE: what a connect request and an
// accept can carry.
inline constexpr size_t kMaxConnectPrivateData = 56;
inline constexpr size_t kMaxAcceptPrivateData = 196;

struct ConnectionOptions {
  // What peers may do through this QP as responder. Exporting side: IBV_ACCESS_REMOTE_READ
  // only. Reading side: 0 (nothing of ours is remotely accessible), or REMOTE_WRITE for push.
  int remote_access = IBV_ACCESS_REMOTE_READ;
  uint32_t max_send_wr = 64;                // work requests this side may have outstanding
  uint32_t max_recv_wr = 1;                 // no two-sided traffic yet
  uint8_t initiator_depth = 16;             // RDMA READs we may have in flight (capped by the peer)
  uint8_t responder_resources = 16;         // RDMA READs we serve at once (capped by the device)
  std::chrono::milliseconds timeout{5000};  // address/route resolution, each connection step
};

class Connection;

class Listener {
 public:
  // rdma_cm listener bound to `address` (an IPv4/IPv6 address of an RDMA-capable interface;
  // "0.0.0.0" for all) and `port` (0: any free port, see port()).
  static Result<Listener> Open(const std::string& address, uint16_t port, int backlog = 64);

  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&& other) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  uint16_t port() const;
  // The event channel's fd: readable when a connection request waits (for an event loop).
  int fd() const;

  // Waits up to options.timeout for a connection request, creates its QP in `pd` (completions
  // to `cq`) with options.remote_access, accepts it with `private_data` (at most
  // kMaxAcceptPrivateData bytes) and waits until it is established. kTimeout when no request
  // came; the request's own failure otherwise (the listener stays usable).
  Result<Connection> Accept(const ProtectionDomain& pd, const CompletionQueue& cq,
                            std::span<const uint8_t> private_data,
                            const ConnectionOptions& options) const;

 private:
  Listener(rdma_event_channel* channel, rdma_cm_id* id) : channel_(channel), id_(id) {}
  void Release();

  rdma_event_channel* channel_ = nullptr;
  rdma_cm_id* id_ = nullptr;
};

class Connection {
 public:
  // Resolves `address`:`port`, creates the QP in `pd` (completions to `cq`; pd must belong to
  // the device the route goes through), sends a connect request with `private_data` (at most
  // kMaxConnectPrivateData bytes) and waits for the peer's accept. kUnavailable when the peer
  // rejects or nothing listens there, kTimeout when a step takes longer than options.timeout.
  static Result<Connection> Connect(const ProtectionDomain& pd, const CompletionQueue& cq,
                                    const std::string& address, uint16_t port,
                                    std::span<const uint8_t> private_data,
                                    const ConnectionOptions& options);

  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();  // rdma_disconnect, then the QP and the id

  ibv_qp* qp() const { return qp_; }
  // What the peer sent with its connect request (listener side) or its accept (connector side);
  // over InfiniBand/RoCE padded with zeros to the message's private-data size.
  const std::vector<uint8_t>& peer_data() const { return peer_data_; }
  // Outstanding RDMA READs this side may post (the initiator depth both sides agreed on).
  uint8_t initiator_depth() const { return initiator_depth_; }

  // Posts one signaled RDMA READ of local.size() bytes from remote_address (rkey) into `local`
  // (registered with lkey, LOCAL_WRITE). The completion arrives on the CQ with `wr_id`.
  Status PostRead(std::span<std::byte> local, uint32_t lkey, uint64_t remote_address, uint32_t rkey,
                  uint64_t wr_id);
  // Posts one signaled RDMA WRITE of `local` to remote_address (rkey): push into a peer's
  // landing buffer.
  Status PostWrite(std::span<const std::byte> local, uint32_t lkey, uint64_t remote_address,
                   uint32_t rkey, uint64_t wr_id);

  // Moves the QP to the error state: every work request still queued completes at once with
  // IBV_WC_WR_FLUSH_ERR (and no DMA into its buffer follows), new posts fail. For a reader that
  // must give its buffers back before their reads finished (a deadline).
  Status Fail();
  // Send work requests this side may have posted and not yet completed (max_send_wr).
  uint32_t send_queue_depth() const { return send_queue_depth_; }

  // The QP's remote access flags as the device reports them (ibv_query_qp).
  Result<int> QueryRemoteAccess() const;
  // Changes what peers may do through this QP as responder, on an established connection (an
  // RTS -> RTS transition): the exporter opens a connection for RDMA READ only once its client
  // showed a read token (agent/verbs_exporter.h). A READ that arrives while the flags forbid it
  // is refused (the requester sees IBV_WC_REM_INV_REQ_ERR and its QP fails).
  Status SetRemoteAccess(int remote_access);
  // True once the peer disconnected (or the connection failed); does not wait.
  Result<bool> PeerGone();

 private:
  Connection(rdma_event_channel* channel, rdma_cm_id* id, ibv_qp* qp,
             std::vector<uint8_t> peer_data, uint8_t initiator_depth, uint32_t send_queue_depth)
      : channel_(channel),
        id_(id),
        qp_(qp),
        peer_data_(std::move(peer_data)),
        initiator_depth_(initiator_depth),
        send_queue_depth_(send_queue_depth) {}
  void Release();
  friend class Listener;

  rdma_event_channel* channel_ = nullptr;
  rdma_cm_id* id_ = nullptr;
  ibv_qp* qp_ = nullptr;
  std::vector<uint8_t> peer_data_;
  uint8_t initiator_depth_ = 0;
  uint32_t send_queue_depth_ = 0;
  bool gone_ = false;
};

}  // namespace swrdma::rdma::verbs
