#include "client/cluster_client.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "protocol/file_id.h"

namespace swrdma::client {

bool ShouldTryNextReplica(const Status& status) {
  switch (status.code()) {
    case Code::kOk:
    case Code::kInvalidArgument:  // the fid itself is bad
    case Code::kNotFound:         // verified by the agent's index: replicas agree
    case Code::kDeleted:
    case Code::kPermissionDenied:  // the token is refused; replicas share the signing key
      return false;
    default:  // unknown volume there, unreachable, timeouts, transport, checksum, stale, ...
      return true;
  }
}

namespace {

// A failure of the agent as a whole rather than of one needle.
bool AgentLevel(const Status& s) {
  return s.code() == Code::kUnavailable || s.code() == Code::kTimeout ||
         s.code() == Code::kRdmaTransport || s.code() == Code::kCancelled;
}

}  // namespace

ClusterClient::ClusterClient(ClusterClientOptions options, std::unique_ptr<MasterClient> master,
                             AgentDirectory directory)
    : options_(std::move(options)), master_(std::move(master)), directory_(std::move(directory)) {}

ClusterClient::~ClusterClient() = default;

Result<std::unique_ptr<ClusterClient>> ClusterClient::Create(const ClusterClientOptions& options) {
  SWRDMA_ASSIGN_OR_RETURN(auto master, MasterClient::Create(options.master));
  SWRDMA_ASSIGN_OR_RETURN(auto directory,
                          AgentDirectory::Create(options.agent_port, options.agent_map));
  return std::unique_ptr<ClusterClient>(
      new ClusterClient(options, std::move(master), std::move(directory)));
}

Result<Client*> ClusterClient::ClientFor(const std::string& agent_url) {
  if (auto it = clients_.find(agent_url); it != clients_.end()) return it->second.get();
  ClientOptions o = options_.client;
  o.agent_url = agent_url;
  auto c = Client::Connect(o);
  if (!c) {
    ++stats_.connect_failures;
    down_until_[agent_url] = std::chrono::steady_clock::now() + options_.down_penalty;
    return Error(c.error());
  }
  ++stats_.connects;
  down_until_.erase(agent_url);
  Client* out = c->get();
  clients_[agent_url] = std::move(*c);
  return out;
}

Result<std::vector<ClusterClient::Replica>> ClusterClient::ReplicasFor(uint32_t volume_id) {
  SWRDMA_ASSIGN_OR_RETURN(auto locations, master_->Lookup(volume_id));
  std::vector<Replica> out;
  for (const auto& l : locations) {
    auto agent = directory_.AgentFor(l.url);
    if (!agent)
      return Error(agent.error().WithContext(fmt::format("replica of volume {}", volume_id)));
    const bool seen =
        std::any_of(out.begin(), out.end(), [&](const Replica& r) { return r.agent == *agent; });
    if (!seen) out.push_back({std::move(*agent), l.url});
  }
  // Agents that recently refused a connection go last; the master's order otherwise. (Not
  // std::stable_partition: libstdc++ 12 builds it on get_temporary_buffer, deprecated in C++23,
  // which clang reports under -Werror.)
  const auto now = std::chrono::steady_clock::now();
  std::vector<Replica> ordered, down;
  ordered.reserve(out.size());
  for (auto& r : out) {
    auto it = down_until_.find(r.agent);
    (it == down_until_.end() || it->second <= now ? ordered : down).push_back(std::move(r));
  }
  for (auto& r : down)
    ordered.push_back(std::move(r));
  return ordered;
}

Result<std::vector<std::string>> ClusterClient::AgentsFor(uint32_t volume_id) {
  SWRDMA_ASSIGN_OR_RETURN(auto replicas, ReplicasFor(volume_id));
  std::vector<std::string> out;
  for (auto& r : replicas)
    out.push_back(std::move(r.agent));
  return out;
}

void ClusterClient::ReadVolume(uint32_t volume_id, std::span<const std::string> fids,
                               std::vector<size_t> which, const ReadOptions& options,
                               std::vector<Result<NeedleData>>& out) {
  auto replicas = ReplicasFor(volume_id);
  if (!replicas) {
    for (size_t i : which)
      out[i] = Error(replicas.error().code(),
                     fmt::format("{}: {}", fids[i], replicas.error().message()));
    return;
  }
  // Tokens name a fid, not a server: one per fid serves every replica. The caller's per-fid
  // tokens (options.jwts, lined up with `fids`) are kept aligned with the shrinking batches.
  std::unordered_map<size_t, std::string> tokens;
  const bool per_fid = options_.read_tokens || !options.jwts.empty();
  if (!options.jwts.empty()) {
    for (size_t i : which)
      tokens[i] = i < options.jwts.size() ? options.jwts[i] : std::string();
  } else if (options_.read_tokens) {
    std::vector<size_t> with_token;
    for (size_t i : which) {
      auto t = master_->ReadToken(fids[i]);
      if (!t) {
        out[i] = Error(t.error().code(), fmt::format("{}: {}", fids[i], t.error().message()));
        continue;
      }
      if (*t) ++stats_.tokens;
      tokens[i] = t->value_or("");
      with_token.push_back(i);
    }
    which = std::move(with_token);
  }

  std::unordered_map<size_t, std::vector<std::string>> tried;  // fid index -> one line a replica
  std::unordered_map<size_t, Code> last_code;
  for (size_t r = 0; r < replicas->size() && !which.empty(); ++r) {
    const Replica& replica = (*replicas)[r];
    const std::string where =
        fmt::format("agent {} (volume server {})", replica.agent, replica.server);
    if (r > 0) stats_.failovers += which.size();
    auto client = ClientFor(replica.agent);
    if (!client) {
      for (size_t i : which) {
        tried[i].push_back(fmt::format("{}: {}", where, client.error().ToString()));
        last_code[i] = client.error().code();
      }
      continue;
    }
    std::vector<std::string> batch;
    ReadOptions ro = options;
    ro.jwts.clear();
    for (size_t i : which) {
      batch.push_back(fids[i]);
      if (per_fid) ro.jwts.push_back(tokens[i]);
    }
    auto results = (*client)->ReadMany(batch, ro);
    std::vector<size_t> again;
    size_t agent_failures = 0;
    for (size_t k = 0; k < which.size(); ++k) {
      const size_t i = which[k];
      if (results[k]) {
        ++stats_.reads;
        out[i] = std::move(results[k]);
        continue;
      }
      const Status& s = results[k].error();
      if (!ShouldTryNextReplica(s)) {
        out[i] = std::move(results[k]);
        continue;
      }
      if (AgentLevel(s)) ++agent_failures;
      tried[i].push_back(fmt::format("{}: {}", where, s.ToString()));
      last_code[i] = s.code();
      again.push_back(i);
    }
    if (agent_failures == which.size()) {
      // The agent is gone (its Client already tried to reconnect): a fresh Client next time,
      // and the other replicas first meanwhile.
      clients_.erase(replica.agent);
      down_until_[replica.agent] = std::chrono::steady_clock::now() + options_.down_penalty;
    }
    which = std::move(again);
  }
  if (which.empty()) return;
  master_->Forget(volume_id);  // the replicas may have moved: ask the master again next time
  for (size_t i : which) {
    out[i] = Error(last_code[i],
                   fmt::format("{}: no replica of volume {} could serve it ({} tried): {}", fids[i],
                               volume_id, tried[i].size(), fmt::join(tried[i], "; ")));
  }
}

std::vector<Result<NeedleData>> ClusterClient::ReadMany(std::span<const std::string> fids,
                                                        const ReadOptions& options) {
  std::vector<Result<NeedleData>> out(fids.size(), Error(Code::kInternal, "not read"));
  std::map<uint32_t, std::vector<size_t>> by_volume;
  for (size_t i = 0; i < fids.size(); ++i) {
    auto fid = ParseFileId(fids[i]);
    if (!fid) {
      out[i] = Error(fid.error());
      continue;
    }
    by_volume[fid->volume_id].push_back(i);
  }
  for (auto& [vid, which] : by_volume)
    ReadVolume(vid, fids, std::move(which), options, out);
  return out;
}

Result<NeedleData> ClusterClient::Read(std::string_view fid, const ReadOptions& options) {
  std::string f(fid);
  return std::move(ReadMany(std::span(&f, 1), options)[0]);
}

}  // namespace swrdma::client
