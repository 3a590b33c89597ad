// The verbs transport's one translation of foreign codes into swrdma::Status: work-completion
// statuses (ibv_wc_status) and the errno values libibverbs / librdmacm calls leave behind.
// Every owner in rdma/verbs/ reports through these, so a code means the same thing wherever a
// verbs failure is met.
#pragma once

#include <string_view>

#include <infiniband/verbs.h>

#include "protocol/status.h"

namespace swrdma::rdma::verbs {

// The swrdma code for a work-completion status. IBV_WC_SUCCESS -> kOk; the responder's refusals
// (remote access, invalid request: a WRITE or atomic on a QP or MR that does not allow it, an
// address outside the MR, an unknown rkey) -> kRdmaRemoteAccess; a flushed request (the QP went
// to error before it ran) -> kCancelled; peer gone after retries -> kRdmaTransport.
Code WcCode(ibv_wc_status status);

// Status for a completion with `status` while doing `what`:
//   "RDMA READ of 4096 bytes: remote access error (ibv_wc_status 10)". Ok on success.
Status FromWc(ibv_wc_status status, std::string_view what);

// Status for a failed verbs / rdma_cm call that set errno `error` while doing `what`:
//   "ibv_reg_mr of 1048576 bytes: Bad address (EFAULT)". ENODEV -> kRdmaNoDevice,
//   ENOMEM / EAGAIN -> kResourceExhausted, EINVAL -> kInvalidArgument, EACCES / EPERM ->
//   kPermissionDenied, EFAULT -> kUnsupported (the kernel will not pin that memory that way),
//   ETIMEDOUT -> kTimeout, ECONNREFUSED / ENETUNREACH / EHOSTUNREACH -> kUnavailable; anything
//   else kRdmaTransport.
Status FromErrno(int error, std::string_view what);

}  // namespace swrdma::rdma::verbs
