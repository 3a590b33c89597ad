#include "rdma/ucx/ucx_status.h"

#include <string>

namespace swrdma::rdma {

Code UcsCode(ucs_status_t status) {
  switch (status) {
    case UCS_OK:
      return Code::kOk;
    case UCS_INPROGRESS:
      return Code::kInternal;
    case UCS_ERR_NO_MEMORY:
    case UCS_ERR_NO_RESOURCE:
    case UCS_ERR_EXCEEDS_LIMIT:
      return Code::kResourceExhausted;
    case UCS_ERR_INVALID_PARAM:
    case UCS_ERR_INVALID_ADDR:  // e.g. a malformed worker address from a peer
    case UCS_ERR_MESSAGE_TRUNCATED:
    case UCS_ERR_BUFFER_TOO_SMALL:
    case UCS_ERR_OUT_OF_RANGE:
    case UCS_ERR_ALREADY_EXISTS:
      return Code::kInvalidArgument;
    case UCS_ERR_NO_ELEM:
      return Code::kNotFound;
    case UCS_ERR_NOT_IMPLEMENTED:
    case UCS_ERR_UNSUPPORTED:
      return Code::kUnsupported;
    case UCS_ERR_NO_DEVICE:
      return Code::kRdmaNoDevice;
    case UCS_ERR_REJECTED:
      return Code::kRdmaRemoteAccess;
    case UCS_ERR_TIMED_OUT:
      return Code::kTimeout;
    case UCS_ERR_CANCELED:
      return Code::kCancelled;
    case UCS_ERR_BUSY:
      return Code::kUnavailable;
    case UCS_ERR_IO_ERROR:
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_NO_PROGRESS:
    case UCS_ERR_SOME_CONNECTS_FAILED:
    case UCS_ERR_SHMEM_SEGMENT:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_CONNECTION_RESET:
      return Code::kRdmaTransport;
    default:
      break;
  }
  // Link and endpoint failures (UCS_ERR_ENDPOINT_TIMEOUT among them) mean the peer or the path
  // to it is gone: a transport failure, not a slow operation.
  if (UCS_IS_LINK_ERROR(status) || UCS_IS_ENDPOINT_ERROR(status)) return Code::kRdmaTransport;
  return Code::kInternal;
}

std::string_view UcsStatusName(ucs_status_t status) {
  switch (status) {
#define SWRDMA_UCS_NAME(name) \
  case name:                  \
    return #name
    SWRDMA_UCS_NAME(UCS_OK);
    SWRDMA_UCS_NAME(UCS_INPROGRESS);
    SWRDMA_UCS_NAME(UCS_ERR_NO_MESSAGE);
    SWRDMA_UCS_NAME(UCS_ERR_NO_RESOURCE);
    SWRDMA_UCS_NAME(UCS_ERR_IO_ERROR);
    SWRDMA_UCS_NAME(UCS_ERR_NO_MEMORY);
    SWRDMA_UCS_NAME(UCS_ERR_INVALID_PARAM);
    SWRDMA_UCS_NAME(UCS_ERR_UNREACHABLE);
    SWRDMA_UCS_NAME(UCS_ERR_INVALID_ADDR);
    SWRDMA_UCS_NAME(UCS_ERR_NOT_IMPLEMENTED);
    SWRDMA_UCS_NAME(UCS_ERR_MESSAGE_TRUNCATED);
    SWRDMA_UCS_NAME(UCS_ERR_NO_PROGRESS);
    SWRDMA_UCS_NAME(UCS_ERR_BUFFER_TOO_SMALL);
    SWRDMA_UCS_NAME(UCS_ERR_NO_ELEM);
    SWRDMA_UCS_NAME(UCS_ERR_SOME_CONNECTS_FAILED);
    SWRDMA_UCS_NAME(UCS_ERR_NO_DEVICE);
    SWRDMA_UCS_NAME(UCS_ERR_BUSY);
    SWRDMA_UCS_NAME(UCS_ERR_CANCELED);
    SWRDMA_UCS_NAME(UCS_ERR_SHMEM_SEGMENT);
    SWRDMA_UCS_NAME(UCS_ERR_ALREADY_EXISTS);
    SWRDMA_UCS_NAME(UCS_ERR_OUT_OF_RANGE);
    SWRDMA_UCS_NAME(UCS_ERR_TIMED_OUT);
    SWRDMA_UCS_NAME(UCS_ERR_EXCEEDS_LIMIT);
    SWRDMA_UCS_NAME(UCS_ERR_UNSUPPORTED);
    SWRDMA_UCS_NAME(UCS_ERR_REJECTED);
    SWRDMA_UCS_NAME(UCS_ERR_NOT_CONNECTED);
    SWRDMA_UCS_NAME(UCS_ERR_CONNECTION_RESET);
    SWRDMA_UCS_NAME(UCS_ERR_ENDPOINT_TIMEOUT);
#undef SWRDMA_UCS_NAME
    default:
      break;
  }
  if (UCS_IS_LINK_ERROR(status)) return "UCS_ERR_<link failure>";
  if (UCS_IS_ENDPOINT_ERROR(status)) return "UCS_ERR_<endpoint failure>";
  return "UCS_ERR_<unknown>";
}

Status FromUcs(ucs_status_t status, std::string_view what) {
  if (status == UCS_OK) return Status::Ok();
  std::string message(what);
  message += ": ";
  message += ucs_status_string(status);
  message += " (";
  message += UcsStatusName(status);
  if (UcsStatusName(status).find('<') != std::string_view::npos) {
    message += " ";
    message += std::to_string(static_cast<int>(status));
  }
  message += ")";
  return Status(UcsCode(status), std::move(message));
}

}  // namespace swrdma::rdma
