#include "client/cli/bench_fids.h"

#include <fstream>

#include <fmt/format.h>

#include "protocol/file_id.h"
#include "protocol/messages.h"
#include "protocol/wire.h"

namespace swrdma::cli {

Result<std::vector<std::string>> SampleLiveFids(const client::HttpUrl& agent, uint32_t volume_id,
                                                size_t count, uint64_t seed,
                                                std::chrono::milliseconds timeout) {
  client::AgentHttp http(agent, timeout);
  const std::string target =
      fmt::format("/v1/volumes/{}/sample?n={}&seed={}", volume_id, count, seed);
  auto reply = http.Request("GET", target, {}, {}, kMsgpackMime);
  if (!reply) return Error(reply.error().WithContext("asking the agent for live needles"));
  const WireFormat f = reply->content_type.find("json") != std::string::npos ? WireFormat::kJson
                                                                             : WireFormat::kMsgpack;
  auto tree = DecodeBody(reply->body, f);
  if (reply->status != 200) {
    const std::string msg = tree && tree->contains("error") && (*tree)["error"].is_string()
                                ? (*tree)["error"].get<std::string>()
                                : reply->body.substr(0, 200);
    const bool old_agent = msg.find("no such endpoint") != std::string::npos;
    return Error(reply->status == 404 && !old_agent ? Code::kNotFound : Code::kUnavailable,
                 fmt::format("GET {} answered {}: {}{}", target, reply->status, msg,
                             old_agent ? " (an agent without sampling: pass --fids FILE)" : ""));
  }
  if (!tree) return Error(tree.error().WithContext("the agent's sample answer"));
  SWRDMA_ASSIGN_OR_RETURN(auto sample, SampleResponseFromJson(*tree));
  return std::move(sample.fids);
}

Result<std::vector<std::string>> LoadFidManifest(std::string_view path, uint32_t volume_id) {
  std::ifstream in{std::string(path)};
  if (!in) {
    return Error(Code::kNotFound,
                 fmt::format("reading {}: cannot open it; write one with swrdma mkvolume "
                             "--fids FILE",
                             path));
  }
  std::vector<std::string> out;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t begin = line.find_first_not_of(" \t");
    if (begin == std::string::npos || line[begin] == '#') continue;
    std::vector<std::string_view> cols;
    std::string_view rest = std::string_view(line).substr(begin);
    while (!rest.empty()) {
      const size_t end = rest.find_first_of(" \t");
      cols.push_back(rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
      rest.remove_prefix(std::min(rest.find_first_not_of(" \t"), rest.size()));
    }
    auto fid = ParseFileId(cols[0]);
    if (!fid) {
      return Error(Code::kInvalidArgument,
                   fmt::format("{}:{}: {}", path, number, fid.error().message()));
    }
    if (fid->volume_id != volume_id || (cols.size() > 2 && cols[2] == "deleted")) continue;
    out.emplace_back(cols[0]);
  }
  if (in.bad()) return Error(Code::kIOError, fmt::format("reading {} failed", path));
  return out;
}

}  // namespace swrdma::cli
