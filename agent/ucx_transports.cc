#include "agent/ucx_transports.h"

#include <algorithm>

#include <fmt/format.h>

#include "rdma/transport_list.h"

namespace swrdma::agent {

std::optional<std::string> AgentUcxTransports(const std::optional<std::string>& flag,
                                              const char* env_tls, bool insecure_ucx_tcp) {
  if (flag) return flag;
  // The operator's UCX_TLS (UCX applies it), or UCX's default with tcp when it is allowed.
  if (env_tls != nullptr || insecure_ucx_tcp) return std::nullopt;
  return std::string(kDefaultAgentTransports);
}

Status CheckUcxTcp(std::span<const std::string> in_use, std::string_view asked,
                   bool insecure_ucx_tcp) {
  if (insecure_ucx_tcp || std::find(in_use.begin(), in_use.end(), "tcp") == in_use.end()) {
    return Status::Ok();
  }
  return Status(
      Code::kInvalidArgument,
      fmt::format("UCX tcp is selected ({}), and any peer that reaches a UCX tcp port can write "
                  "agent memory with UCX's own PUT_REQ frame (docs/security.md); other hosts read "
                  "over --read-port without it. Drop tcp from --transports / UCX_TLS (the "
                  "default is {}), or pass --insecure-ucx-tcp on a network where every host is "
                  "trusted",
                  asked, kDefaultAgentTransports));
}

std::optional<std::string> WithoutVerbs(const std::optional<std::string>& transports, bool* named) {
  return rdma::WithoutTransport(transports, "verbs", named);
}

}  // namespace swrdma::agent
