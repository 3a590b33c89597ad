// Which UCX transports the agent offers its peers (issue 13, docs/security.md).
//
// UCX's tcp transport cannot face a hostile peer: UCT handles its own PUT_REQ frame at the
// transport level and writes wherever the frame says (uct_tcp_ep_handle_put_req in
// src/uct/tcp/tcp_ep.c, UCX 1.13), whatever UCP features the agent's context asked for. Peers on
// other hosts read over the agent's own TCP framing instead (--read-port, tcp_read_server.h), so
// the agent's UCX context leaves tcp out unless the operator opts in for a trusted network.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace swrdma::agent {

// UCX_TLS when neither --transports nor the environment names transports: everything but tcp
// (shared memory: posix, sysv, cma, self; InfiniBand/RoCE transports where a device exists).
inline constexpr std::string_view kDefaultAgentTransports = "^tcp";
// The default instead where an RDMA device exists (agent_main.cc says why): shared memory only.
inline constexpr std::string_view kSharedMemoryAgentTransports = "posix,sysv,cma,self";

// The UCX_TLS the agent's context asks for: `flag` (--transports) when set, else nullopt when the
// environment has UCX_TLS (`env_tls`, UCX reads it itself) or tcp is allowed (`insecure_ucx_tcp`:
// UCX's default, all transports), else kDefaultAgentTransports.
std::optional<std::string> AgentUcxTransports(const std::optional<std::string>& flag,
                                              const char* env_tls, bool insecure_ucx_tcp);

// --transports without "verbs" (the agent's own verbs exporter, not a UCX transport); `named`
// says whether it was there. nullopt stays nullopt; a list of verbs only becomes nullopt (UCX
// then takes its default for the checked paths).
std::optional<std::string> WithoutVerbs(const std::optional<std::string>& transports, bool* named);

// Refuses UCX tcp among `in_use` (the transports the context selected) unless `insecure_ucx_tcp`
// (--insecure-ucx-tcp); `asked` names where the selection came from, for the message.
Status CheckUcxTcp(std::span<const std::string> in_use, std::string_view asked,
                   bool insecure_ucx_tcp);

}  // namespace swrdma::agent
