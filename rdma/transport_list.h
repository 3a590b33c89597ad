// Comma-separated transport lists as users write them (--transports, UCX_TLS): the one place
// that takes names out of them, shared by the agent and the client ("verbs" is ours, not UCX's).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace swrdma::rdma {

// `list` without every entry equal to `name` (and without empty entries); `named`, when given,
// says whether `name` was there. nullopt stays nullopt, and so does a list of nothing else.
std::optional<std::string> WithoutTransport(const std::optional<std::string>& list,
                                            std::string_view name, bool* named = nullptr);

}  // namespace swrdma::rdma
