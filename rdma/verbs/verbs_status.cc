#include "rdma/verbs/verbs_status.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace swrdma::rdma::verbs {

Code WcCode(ibv_wc_status status) {
  switch (status) {
    case IBV_WC_SUCCESS:
      return Code::kOk;
    // The responder refused the request: wrong rkey, address outside the MR, an operation the
    // MR or the QP does not allow. What a hostile or stale peer sees.
    case IBV_WC_REM_ACCESS_ERR:
    case IBV_WC_REM_INV_REQ_ERR:
    case IBV_WC_REM_INV_RD_REQ_ERR:
    case IBV_WC_REM_OP_ERR:
      return Code::kRdmaRemoteAccess;
    case IBV_WC_WR_FLUSH_ERR:  // the QP went to error; queued work is flushed, not performed
      return Code::kCancelled;
    case IBV_WC_RESP_TIMEOUT_ERR:
      return Code::kTimeout;
    case IBV_WC_LOC_LEN_ERR:
      return Code::kInvalidArgument;
    case IBV_WC_RETRY_EXC_ERR:  // no answer after all retries: path or peer gone
    case IBV_WC_RNR_RETRY_EXC_ERR:
    case IBV_WC_REM_ABORT_ERR:
    case IBV_WC_LOC_QP_OP_ERR:
    case IBV_WC_LOC_EEC_OP_ERR:
    case IBV_WC_LOC_PROT_ERR:  // our own lkey / local buffer: a bug on this side, or a dead MR
    case IBV_WC_LOC_ACCESS_ERR:
    case IBV_WC_LOC_RDD_VIOL_ERR:
    case IBV_WC_BAD_RESP_ERR:
    case IBV_WC_MW_BIND_ERR:
    case IBV_WC_FATAL_ERR:
    case IBV_WC_INV_EECN_ERR:
    case IBV_WC_INV_EEC_STATE_ERR:
    case IBV_WC_TM_ERR:
    case IBV_WC_TM_RNDV_INCOMPLETE:
    case IBV_WC_GENERAL_ERR:
      return Code::kRdmaTransport;
  }
  return Code::kInternal;
}

Status FromWc(ibv_wc_status status, std::string_view what) {
  if (status == IBV_WC_SUCCESS) return Status::Ok();
  std::string message(what);
  message += ": ";
  message += ibv_wc_status_str(status);
  message += " (ibv_wc_status ";
  message += std::to_string(static_cast<int>(status));
  message += ")";
  return Status(WcCode(status), std::move(message));
}

namespace {

Code ErrnoCode(int error) {
  switch (error) {
    case ENODEV:
    case ENXIO:
      return Code::kRdmaNoDevice;
    case ENOMEM:
    case EAGAIN:
    case ENOSPC:
      return Code::kResourceExhausted;
    case EINVAL:
      return Code::kInvalidArgument;
    case EACCES:
    case EPERM:
      return Code::kPermissionDenied;
    case EFAULT:
      return Code::kUnsupported;
    case ETIMEDOUT:
      return Code::kTimeout;
    case ECONNREFUSED:
    case ECONNRESET:
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EADDRNOTAVAIL:
      return Code::kUnavailable;
    default:
      return Code::kRdmaTransport;
  }
}

}  // namespace

Status FromErrno(int error, std::string_view what) {
  std::string message(what);
  message += ": ";
  message += std::strerror(error);
  if (const char* name = strerrorname_np(error)) {
    message += " (";
    message += name;
    message += ")";
  }
  return Status(ErrnoCode(error), std::move(message));
}

}  // namespace swrdma::rdma::verbs
