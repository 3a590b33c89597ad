// What the VM tests' verbs peers share (tests/vm/verbs_vmtest.cc against its own exporter,
// tests/vm/verbs_attack.cc against the real agent): one raw work request of any opcode, posted
// with ibv_post_send directly (the project's Connection offers READ and WRITE only; a hostile
// peer also sends atomics) and waited for, and what counts as the responder refusing it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <infiniband/verbs.h>

#include "protocol/status.h"
#include "rdma/verbs/completion_queue.h"
#include "rdma/verbs/connection.h"
#include "rdma/verbs/verbs_status.h"

namespace swrdma::rdma::verbs::vmtest {

inline bool IsAtomic(ibv_wr_opcode opcode) {
  return opcode == IBV_WR_ATOMIC_FETCH_AND_ADD || opcode == IBV_WR_ATOMIC_CMP_AND_SWP;
}

inline const char* OpcodeName(ibv_wr_opcode opcode) {
  switch (opcode) {
    case IBV_WR_RDMA_READ:
      return "RDMA READ";
    case IBV_WR_RDMA_WRITE:
      return "RDMA WRITE";
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      return "atomic fetch-and-add";
    case IBV_WR_ATOMIC_CMP_AND_SWP:
      return "atomic compare-and-swap";
    default:
      return "work request";
  }
}

// Posts one signaled work request: `opcode` on `local` (registered LOCAL_WRITE under `lkey`;
// atomics use its first 8 bytes) against remote/rkey, and waits for its completion on `cq` (the
// connection's, with nothing else outstanding). Returns the completion's status; an error only
// when it could not be posted or did not complete within `timeout`.
inline Result<ibv_wc_status> PostAndWait(
    Connection& conn, const CompletionQueue& cq, std::span<std::byte> local, uint32_t lkey,
    ibv_wr_opcode opcode, uint64_t remote, uint32_t rkey,
    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  constexpr uint64_t kWrId = 0x5357524d;  // "SWRM"
  ibv_sge sge{reinterpret_cast<uintptr_t>(local.data()),
              static_cast<uint32_t>(IsAtomic(opcode) ? 8 : local.size()), lkey};
  ibv_send_wr wr{};
  wr.wr_id = kWrId;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = opcode;
  wr.send_flags = IBV_SEND_SIGNALED;
  if (IsAtomic(opcode)) {
    wr.wr.atomic.remote_addr = remote;
    wr.wr.atomic.rkey = rkey;
    wr.wr.atomic.compare_add = 0x0101010101010101ull;
    wr.wr.atomic.swap = 0xdeadbeefdeadbeefull;
  } else {
    wr.wr.rdma.remote_addr = remote;
    wr.wr.rdma.rkey = rkey;
  }
  ibv_send_wr* bad = nullptr;
  if (int rc = ibv_post_send(conn.qp(), &wr, &bad); rc != 0) {
    return Error(FromErrno(rc, std::string("ibv_post_send of an ") + OpcodeName(opcode)));
  }
  SWRDMA_ASSIGN_OR_RETURN(ibv_wc wc, cq.WaitOne(timeout));
  if (wc.wr_id != kWrId) {
    return Error(Code::kInternal, "a completion of another work request (wr_id " +
                                      std::to_string(wc.wr_id) + ") on the probe's CQ");
  }
  return wc.status;
}

// The responder refused the request: remote access error or invalid request (a WRITE or atomic
// the QP or the MR does not allow, an address outside the MR, an unknown rkey). A transport
// failure or a timeout is not a refusal.
inline bool Refused(ibv_wc_status status) {
  return WcCode(status) == Code::kRdmaRemoteAccess;
}

}  // namespace swrdma::rdma::verbs::vmtest
