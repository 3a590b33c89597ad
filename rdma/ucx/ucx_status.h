// The one translation of foreign RDMA status codes (UCX ucs_status_t, verbs ibv_wc_status) into
// swrdma::Status. Every owner in rdma/ reports failures through these functions so that a code
// means the same thing wherever it comes from.
#pragma once

#include <string_view>

#include <infiniband/verbs.h>
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

// The swrdma code for a verbs work-completion status. IBV_WC_SUCCESS -> kOk.
Code IbvWcCode(ibv_wc_status status);

// Status for a work completion with `status` while doing `what` (message from
// ibv_wc_status_str). Ok when status is IBV_WC_SUCCESS.
Status FromIbvWc(ibv_wc_status status, std::string_view what);

}  // namespace swrdma::rdma
