// The one translation of UCX status codes (ucs_status_t) into swrdma::Status. Every owner in
// rdma/ucx/ reports failures through these functions; verbs statuses (ibv_wc_status, errno) have
// theirs in rdma/verbs/verbs_status.h, with the same codes for the same meanings.
#pragma once

#include <string_view>

#include <ucs/type/status.h>

#include "protocol/status.h"

namespace swrdma::rdma {

// The swrdma code for a UCX status. UCS_OK -> kOk; UCS_INPROGRESS -> kInternal (a caller must
// never translate a status that has not finished).
Code UcsCode(ucs_status_t status);

// Status for a UCX call that returned `status` while doing `what`:
//   "ucp_ep_create to peer: Destination is unreachable (UCS_ERR_UNREACHABLE)".
// Ok when status is UCS_OK.
Status FromUcs(ucs_status_t status, std::string_view what);

// Name of the UCX constant ("UCS_ERR_UNREACHABLE"), or "ucs status <n>" for unknown values.
std::string_view UcsStatusName(ucs_status_t status);

}  // namespace swrdma::rdma
