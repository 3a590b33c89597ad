#include "client/master_lookup.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "protocol/file_id.h"

namespace swrdma::client {

namespace {

constexpr uint16_t kDefaultVolumeServerPort = 8080;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

std::string HostPortKey(const HttpUrl& u) {
  const std::string host = Lower(u.host);
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, u.port)
                                             : fmt::format("{}:{}", host, u.port);
}

// Does "host:port" / "http://[::1]:80/" name a port, or only a host?
bool NamesPort(std::string_view s) {
  if (s.starts_with("http://")) s.remove_prefix(7);
  s = s.substr(0, s.find('/'));
  if (s.starts_with('[')) return s.find("]:") != std::string_view::npos;
  return s.find(':') != std::string_view::npos;
}

std::string JsonString(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string FormatHttpUrl(const HttpUrl& url) {
  return url.host.find(':') != std::string::npos
             ? fmt::format("http://[{}]:{}{}", url.host, url.port, url.base_path)
             : fmt::format("http://{}:{}{}", url.host, url.port, url.base_path);
}

Result<std::vector<VolumeLocation>> ParseDirLookup(int status, std::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(Code::kCorruption,
                 fmt::format("master answered HTTP {} with a body that is not a JSON object: {}",
                             status, body.substr(0, 200)));
  }
  const std::string error = JsonString(j, "error");
  if (!error.empty()) {
    return Error(status >= 500 ? Code::kUnavailable : Code::kUnknownVolume,
                 fmt::format("master answered HTTP {}: {}", status, error));
  }
  if (status != 200) {
    return Error(Code::kUnavailable,
                 fmt::format("master answered HTTP {}: {}", status, body.substr(0, 200)));
  }
  std::vector<VolumeLocation> out;
  auto locs = j.find("locations");
  if (locs != j.end() && locs->is_array()) {
    for (const auto& l : *locs) {
      if (!l.is_object()) continue;
      VolumeLocation v{JsonString(l, "url"), JsonString(l, "publicUrl"),
                       JsonString(l, "dataCenter")};
      if (v.url.empty()) v.url = v.public_url;
      if (!v.url.empty()) out.push_back(std::move(v));
    }
  }
  if (out.empty()) {
    return Error(Code::kUnknownVolume, fmt::format("master knows no location of volume {}",
                                                   JsonString(j, "volumeOrFileId")));
  }
  return out;
}

std::optional<std::string> BearerToken(std::string_view authorization) {
  std::string_view v = Trim(authorization);
  if (v.size() < 7 || Lower(v.substr(0, 7)) != "bearer ") return std::nullopt;
  v = Trim(v.substr(7));
  if (v.empty()) return std::nullopt;
  return std::string(v);
}

MasterClient::MasterClient(MasterClientOptions options,
                           std::vector<std::unique_ptr<AgentHttp>> masters)
    : options_(std::move(options)), masters_(std::move(masters)) {}

Result<std::unique_ptr<MasterClient>> MasterClient::Create(const MasterClientOptions& options) {
  std::vector<std::unique_ptr<AgentHttp>> masters;
  std::string_view rest = options.master_url;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view one = Trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (one.empty()) continue;
    auto url = ParseHttpUrl(one, kDefaultMasterPort);
    if (!url) return Error(url.error().WithContext("--master"));
    masters.push_back(std::make_unique<AgentHttp>(std::move(*url), options.timeout));
  }
  if (masters.empty()) {
    return Error(Code::kInvalidArgument,
                 "--master names no master; use http://HOST:9333[,http://HOST2:9333]");
  }
  return std::unique_ptr<MasterClient>(new MasterClient(options, std::move(masters)));
}

Result<HttpReply> MasterClient::Get(const std::string& target) {
  std::lock_guard lock(http_mu_);
  Status last;
  for (size_t k = 0; k < masters_.size(); ++k) {
    const size_t i = (preferred_ + k) % masters_.size();
    auto reply = masters_[i]->Request("GET", target, {}, {}, "application/json");
    if (reply) {
      preferred_ = i;  // stick to a master that answers
      return reply;
    }
    last = reply.error();
  }
  return Error(
      last.WithContext(fmt::format("asking the SeaweedFS master ({})", options_.master_url)));
}

Result<std::vector<VolumeLocation>> MasterClient::Lookup(uint32_t volume_id) {
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(volume_id);
    if (it != cache_.end() && it->second.expires > std::chrono::steady_clock::now()) {
      ++stats_.cache_hits;
      return it->second.locations;
    }
    ++stats_.lookups;
  }
  SWRDMA_ASSIGN_OR_RETURN(auto reply, Get(fmt::format("/dir/lookup?volumeId={}", volume_id)));
  auto locations = ParseDirLookup(reply.status, reply.body);
  if (!locations) {
    return Error(locations.error().WithContext(fmt::format("looking up volume {}", volume_id)));
  }
  std::lock_guard lock(mu_);
  cache_[volume_id] = {*locations, std::chrono::steady_clock::now() + options_.location_ttl};
  return locations;
}

void MasterClient::Forget(uint32_t volume_id) {
  std::lock_guard lock(mu_);
  cache_.erase(volume_id);
}

Result<std::optional<std::string>> MasterClient::ReadToken(std::string_view fid) {
  // The fid goes into a URL: accept only what a fid can hold.
  SWRDMA_ASSIGN_OR_RETURN(auto parsed, ParseFileId(fid));
  (void)parsed;
  {
    std::lock_guard lock(mu_);
    ++stats_.token_requests;
  }
  // The master signs the fileId exactly as asked; the volume server (and the agent) compare the
  // token's fid with the requested one without its "_N" suffix. So a token for "3,01637037d6_2"
  // must be asked for "3,01637037d6", or it is refused (issue 15, 7).
  SWRDMA_ASSIGN_OR_RETURN(
      auto reply, Get(fmt::format("/dir/lookup?fileId={}&read=yes", StripDeltaSuffix(fid))));
  if (reply.status != 200) {
    auto parsed_reply = ParseDirLookup(reply.status, reply.body);
    const Status why = parsed_reply ? Status(Code::kUnavailable,
                                             fmt::format("master answered HTTP {}", reply.status))
                                    : parsed_reply.error();
    return Error(why.WithContext(fmt::format("asking for a read token of {}", fid)));
  }
  return BearerToken(reply.Header("Authorization"));
}

MasterStats MasterClient::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

Result<AgentDirectory> AgentDirectory::Create(uint16_t agent_port, std::string_view map_file) {
  if (map_file.empty()) return AgentDirectory(agent_port);
  std::ifstream in{std::string(map_file)};
  if (!in) {
    return Error(Code::kNotFound,
                 fmt::format("reading agent map {}: cannot open it (lines: VOLUME_SERVER "
                             "AGENT_URL)",
                             map_file));
  }
  std::stringstream text;
  text << in.rdbuf();
  return Parse(agent_port, text.str(), map_file);
}

Result<AgentDirectory> AgentDirectory::Parse(uint16_t agent_port, std::string_view text,
                                             std::string_view source) {
  AgentDirectory d(agent_port);
  size_t number = 0;
  while (!text.empty()) {
    ++number;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    line = Trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const size_t gap = line.find_first_of(" \t");
    const std::string_view key = line.substr(0, gap);
    const std::string_view value =
        gap == std::string_view::npos ? std::string_view() : Trim(line.substr(gap));
    if (value.empty() || value.find_first_of(" \t") != std::string_view::npos) {
      return Error(
          Code::kInvalidArgument,
          fmt::format("{}:{}: expected 'VOLUME_SERVER AGENT_URL', got '{}'", source, number, line));
    }
    auto server = ParseHttpUrl(key, kDefaultVolumeServerPort);
    auto agent = ParseHttpUrl(value, agent_port);
    if (!server || !agent) {
      return Error(Code::kInvalidArgument,
                   fmt::format("{}:{}: {}", source, number,
                               (!server ? server.error() : agent.error()).message()));
    }
    if (NamesPort(key)) {
      d.by_address_[HostPortKey(*server)] = FormatHttpUrl(*agent);
    } else {
      d.by_host_[Lower(server->host)] = FormatHttpUrl(*agent);
    }
  }
  return d;
}

Result<std::string> AgentDirectory::AgentFor(std::string_view volume_server) const {
  auto server = ParseHttpUrl(Trim(volume_server), kDefaultVolumeServerPort);
  if (!server) return Error(server.error().WithContext("volume server address"));
  if (auto it = by_address_.find(HostPortKey(*server)); it != by_address_.end()) {
    return it->second;
  }
  if (auto it = by_host_.find(Lower(server->host)); it != by_host_.end()) return it->second;
  return FormatHttpUrl(HttpUrl{server->host, agent_port_, ""});
}

}  // namespace swrdma::client
