#include "client/cluster_client.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "protocol/file_id.h"
#include "protocol/needle.h"

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
  // EC needles no holder has whole: from the pieces of every holder.
  std::vector<size_t> ec;
  for (size_t i : which)
    if (last_code[i] == Code::kUnknownVolume) ec.push_back(i);
  if (!ec.empty()) {
    ReadOptions ro = options;
    ro.jwts.clear();
    if (per_fid) {
      ro.jwts.resize(fids.size());
      for (size_t i : ec)
        ro.jwts[i] = tokens[i];
    }
    AssembleEc(volume_id, fids, ec, *replicas, ro, out, tried);
    std::vector<size_t> left;
    for (size_t i : which)
      if (last_code[i] != Code::kUnknownVolume || std::find(ec.begin(), ec.end(), i) != ec.end())
        left.push_back(i);
    which = std::move(left);
  }
  if (which.empty()) return;
  master_->Forget(volume_id);  // the replicas may have moved: ask the master again next time
  for (size_t i : which) {
    out[i] = Error(last_code[i],
                   fmt::format("{}: no replica of volume {} could serve it ({} tried): {}", fids[i],
                               volume_id, tried[i].size(), fmt::join(tried[i], "; ")));
  }
}

namespace {

// One EC needle being put together from the pieces of several agents.
struct Assembly {
  bool started = false;
  uint64_t length = 0;
  uint32_t needle_size = 0;
  uint8_t version = 0;
  std::vector<uint8_t> record;
  std::vector<std::pair<uint64_t, uint64_t>> have;  // [begin, end), sorted, merged

  void Add(uint64_t begin, std::span<const uint8_t> bytes) {
    std::memcpy(record.data() + begin, bytes.data(), bytes.size());
    have.emplace_back(begin, begin + bytes.size());
    std::sort(have.begin(), have.end());
    std::vector<std::pair<uint64_t, uint64_t>> merged;
    for (const auto& iv : have) {
      if (!merged.empty() && iv.first <= merged.back().second) {
        merged.back().second = std::max(merged.back().second, iv.second);
      } else {
        merged.push_back(iv);
      }
    }
    have = std::move(merged);
  }
  uint64_t covered() const {
    uint64_t n = 0;
    for (const auto& iv : have)
      n += iv.second - iv.first;
    return n;
  }
  bool whole() const {
    return started && have.size() == 1 && have[0].first == 0 && have[0].second == length;
  }
};

// The largest record assembled: as large as a checked read over tcp takes by default.
constexpr uint64_t kMaxAssembledRecord = uint64_t{1} << 30;

}  // namespace

Status CheckEcRecordShape(const EcRecordPieces& p, uint64_t max_record) {
  auto version = ToNeedleVersion(p.needle_version);
  if (!version) return Status(Code::kCorruption, "EC pieces: " + version.error().message());
  const uint64_t want = NeedleRecordLength(p.needle_size, *version);
  if (p.record_length != want || p.record_length > max_record) {
    return Status(Code::kCorruption,
                  fmt::format("EC pieces of a {} byte record for a needle of {} bytes (version "
                              "{}: {} bytes), at most {} taken",
                              p.record_length, p.needle_size, p.needle_version, want, max_record));
  }
  return Status::Ok();
}

void ClusterClient::AssembleEc(uint32_t volume_id, std::span<const std::string> fids,
                               std::vector<size_t>& which, const std::vector<Replica>& replicas,
                               const ReadOptions& options, std::vector<Result<NeedleData>>& out,
                               std::unordered_map<size_t, std::vector<std::string>>& tried) {
  std::unordered_map<size_t, Assembly> parts;
  std::vector<size_t> open = which;
  Client* verifier = nullptr;
  for (const Replica& replica : replicas) {
    if (open.empty()) break;
    auto client = ClientFor(replica.agent);
    if (!client) continue;  // its failure is in `tried` already
    if (verifier == nullptr) verifier = *client;
    std::vector<std::string> batch;
    ReadOptions ro = options;
    ro.jwts.clear();
    for (size_t i : open) {
      batch.push_back(fids[i]);
      if (!options.jwts.empty()) ro.jwts.push_back(options.jwts[i]);
    }
    auto got = (*client)->ReadEcPieces(batch, ro);
    const std::string where =
        fmt::format("agent {} (volume server {}), EC pieces", replica.agent, replica.server);
    for (size_t k = 0; k < open.size(); ++k) {
      const size_t i = open[k];
      if (!got[k]) {
        tried[i].push_back(fmt::format("{}: {}", where, got[k].error().ToString()));
        continue;
      }
      Assembly& a = parts[i];
      const EcRecordPieces& p = *got[k];
      if (!a.started) {
        if (Status shape = CheckEcRecordShape(p, kMaxAssembledRecord); !shape.ok()) {
          tried[i].push_back(fmt::format("{}: {}", where, shape.ToString()));
          continue;
        }
        a.started = true;
        a.length = p.record_length;
        a.needle_size = p.needle_size;
        a.version = p.needle_version;
        a.record.assign(a.length, 0);
      } else if (p.record_length != a.length || p.needle_size != a.needle_size ||
                 p.needle_version != a.version) {
        tried[i].push_back(fmt::format(
            "{}: says the record is {} bytes (needle size {}, version {}), another holder {} "
            "({}, {})",
            where, p.record_length, p.needle_size, p.needle_version, a.length, a.needle_size,
            a.version));
        continue;
      }
      for (const auto& piece : p.pieces) {
        if (piece.record_offset > a.length || piece.bytes.size() > a.length - piece.record_offset)
          continue;  // cannot happen after DecodeEcPieces; never written past the record
        a.Add(piece.record_offset, piece.bytes);
      }
    }
    std::vector<size_t> still;
    for (size_t i : open) {
      auto it = parts.find(i);
      if (it == parts.end() || !it->second.whole()) still.push_back(i);
    }
    open = std::move(still);
  }
  std::vector<size_t> unanswered;
  for (size_t i : which) {
    auto it = parts.find(i);
    if (it == parts.end() || !it->second.whole() || verifier == nullptr) {
      if (it != parts.end() && it->second.started) {
        tried[i].push_back(fmt::format(
            "EC volume {}: the agents of the {} holders serve {} of the record's {} bytes; the "
            "rest lies in data shards no reachable agent holds (rebuilding them from parity "
            "across servers is not done by the client yet: the volume server's own GET can)",
            volume_id, replicas.size(), it->second.covered(), it->second.length));
      }
      unanswered.push_back(i);
      continue;
    }
    const Assembly& a = it->second;
    auto data = verifier->VerifyAssembled(fids[i], a.record, a.version, a.needle_size, options);
    if (data) {
      ++stats_.reads;
      ++stats_.ec_assembled;
      out[i] = std::move(data);
    } else {
      // The agents' pieces do not make this needle: an error of its own, not a failover.
      out[i] = Error(data.error().code(),
                     fmt::format("{} (assembled from the EC pieces of several agents)",
                                 data.error().message()));
    }
  }
  which = std::move(unanswered);
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
