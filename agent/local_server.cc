#include "agent/local_server.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "agent/agent_config.h"
#include "protocol/local_messages.h"
#include "protocol/thread_name.h"

namespace swrdma::agent {
namespace {

// An id list: decimal ids or names resolved with `by_name`.
template <typename ByName>
Result<std::vector<uint32_t>> ParseIdList(std::string_view text, std::string_view what,
                                          ByName by_name) {
  std::vector<uint32_t> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(pos, comma - pos);
    pos = comma + 1;
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    if (item.empty()) continue;
    uint32_t id = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (ec == std::errc() && p == item.data() + item.size()) {
      out.push_back(id);
      continue;
    }
    auto named = by_name(std::string(item));
    if (!named) {
      return Error(Code::kInvalidArgument,
                   fmt::format("'{}' is neither a number nor a known {} name", item, what));
    }
    out.push_back(*named);
  }
  return out;
}

LocalStatus FromLookup(LookupStatus s) {
  switch (s) {
    case LookupStatus::kOk:
      return LocalStatus::kOk;
    case LookupStatus::kNotFound:
      return LocalStatus::kNotFound;
    case LookupStatus::kDeleted:
      return LocalStatus::kDeleted;
    case LookupStatus::kBadFid:
      return LocalStatus::kBadFid;
    case LookupStatus::kUnknownVolume:
      return LocalStatus::kUnknownVolume;
    case LookupStatus::kNoRoom:
      break;
  }
  return LocalStatus::kInternal;
}

// Supplementary groups of `pid` (the "Groups:" line of /proc/<pid>/status); empty when gone.
std::vector<uint32_t> SupplementaryGroups(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  std::vector<uint32_t> out;
  while (std::getline(in, line)) {
    if (!line.starts_with("Groups:")) continue;
    std::istringstream ss(line.substr(7));
    uint32_t g = 0;
    while (ss >> g)
      out.push_back(g);
    break;
  }
  return out;
}

bool Contains(const std::vector<uint32_t>& v, uint32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

Result<std::vector<uint32_t>> ParseUidList(std::string_view text) {
  return ParseIdList(text, "user", [](const std::string& name) -> std::optional<uint32_t> {
    const passwd* pw = ::getpwnam(name.c_str());
    if (pw == nullptr) return std::nullopt;
    return pw->pw_uid;
  });
}

Result<std::vector<uint32_t>> ParseGidList(std::string_view text) {
  return ParseIdList(text, "group", [](const std::string& name) -> std::optional<uint32_t> {
    const group* gr = ::getgrnam(name.c_str());
    if (gr == nullptr) return std::nullopt;
    return gr->gr_gid;
  });
}

Result<std::unique_ptr<LocalServer>> StartLocalServer(const AgentConfig& config,
                                                      const VolumeSet& volumes, bool tokens_on) {
  if (config.local_socket.empty()) return std::unique_ptr<LocalServer>();
  if (tokens_on && !config.local_with_tokens) {
    // A descriptor gives its whole volume to the local user: tokens would not cover it.
    spdlog::warn(
        "--local-socket {} is off: read tokens are on and a local client would read whole "
        "volumes without them; add --local-with-tokens if every allowed local user is trusted",
        config.local_socket);
    return std::unique_ptr<LocalServer>();
  }
  LocalServerOptions o;
  o.path = config.local_socket;
  for (const auto& u : config.local_allow_uids) {
    auto ids = ParseUidList(u);
    if (!ids) return Error(ids.error().WithContext("--local-allow-uids"));
    o.allow_uids.insert(o.allow_uids.end(), ids->begin(), ids->end());
  }
  for (const auto& g : config.local_allow_gids) {
    auto ids = ParseGidList(g);
    if (!ids) return Error(ids.error().WithContext("--local-allow-gids"));
    o.allow_gids.insert(o.allow_gids.end(), ids->begin(), ids->end());
  }
  o.mode = static_cast<mode_t>(std::stoul(config.local_socket_mode, nullptr, 8));
  if (!config.local_socket_group.empty()) {
    auto g = ParseGidList(config.local_socket_group);
    if (!g || g->size() != 1) {
      return Error(Code::kInvalidArgument,
                   fmt::format("--local-socket-group '{}': not one group name or id",
                               config.local_socket_group));
    }
    o.group = (*g)[0];
  }
  SWRDMA_ASSIGN_OR_RETURN(auto server, LocalServer::Start(volumes, std::move(o)));
  spdlog::info(
      "same-host reads on {} (mode {}, allowed: root, uid {}{}{}){}", config.local_socket,
      config.local_socket_mode, ::geteuid(),
      config.local_allow_uids.empty()
          ? ""
          : fmt::format(", uids {}", fmt::join(config.local_allow_uids, ",")),
      config.local_allow_gids.empty()
          ? ""
          : fmt::format(", gids {}", fmt::join(config.local_allow_gids, ",")),
      tokens_on ? "; read tokens are NOT checked for local clients (--local-with-tokens)" : "");
  return server;
}

Result<std::unique_ptr<LocalServer>> LocalServer::Start(const VolumeSet& volumes,
                                                        LocalServerOptions options) {
  const std::string path = options.path.string();
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Error(Code::kInvalidArgument,
                 fmt::format("--local-socket '{}': needs a path of 1 to {} bytes", path,
                             sizeof(addr.sun_path) - 1));
  }
  auto fail = [&](std::string_view what) {
    return Error(Code::kIOError, fmt::format("local socket {}: {}: {} (check --local-socket and "
                                             "the directory's permissions)",
                                             path, what, std::strerror(errno)));
  };
  std::error_code ec;
  if (options.path.has_parent_path())
    std::filesystem::create_directories(options.path.parent_path(), ec);
  // A socket left by a previous run (crash, restart) is replaced; anything else is not ours.
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error(Code::kInvalidArgument,
                   fmt::format("local socket {}: exists and is not a socket; refusing to replace "
                               "it (choose another --local-socket)",
                               path));
    }
    ::unlink(path.c_str());
  }
  rdma::UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!sock) return fail("socket()");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  // Created with no access at all, then opened up to `mode`: no window where a wider umask
  // would let someone connect.
  const mode_t old_umask = ::umask(0777);
  const int bound = ::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  ::umask(old_umask);
  if (bound != 0) return fail("bind()");
  if (options.group && ::chown(path.c_str(), static_cast<uid_t>(-1), *options.group) != 0) {
    return fail(fmt::format("chown to group {}", *options.group));
  }
  if (::chmod(path.c_str(), options.mode) != 0) return fail("chmod");
  if (::listen(sock.get(), 128) != 0) return fail("listen()");
  rdma::UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return fail("eventfd()");
  std::unique_ptr<LocalServer> s(
      new LocalServer(volumes, std::move(options), std::move(sock), std::move(wake)));
  s->thread_ = std::thread([p = s.get()] {
    NameThisThread("sw-local");
    p->Loop();
  });
  return s;
}

LocalServer::LocalServer(const VolumeSet& volumes, LocalServerOptions options,
                         rdma::UniqueFd listener, rdma::UniqueFd wake)
    : volumes_(volumes),
      options_(std::move(options)),
      listener_(std::move(listener)),
      wake_(std::move(wake)) {
  std::random_device rd;
  instance_ = (uint64_t{rd()} << 32 | rd()) | 1;  // never 0: 0 means "no instance" in /v1/info
}

LocalServer::~LocalServer() {
  Stop();
}

void LocalServer::Stop() {
  if (stopping_.exchange(true)) return;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  listener_.Reset();
  std::error_code ec;
  std::filesystem::remove(options_.path, ec);
}

LocalServerStats LocalServer::stats() const {
  return {connections_.load(), refused_.load(),   fds_sent_.load(),
          lookups_.load(),     malformed_.load(), open_.load()};
}

std::string LocalServer::RenderMetrics() const {
  const LocalServerStats s = stats();
  return fmt::format(
      "# HELP swrdma_local_connections_total Same-host clients accepted on the local socket.\n"
      "# TYPE swrdma_local_connections_total counter\n"
      "swrdma_local_connections_total {}\n"
      "# HELP swrdma_local_refused_total Local-socket connections refused (credentials not on the "
      "allow-list, or too many connections).\n"
      "# TYPE swrdma_local_refused_total counter\n"
      "swrdma_local_refused_total {}\n"
      "# HELP swrdma_local_fds_sent_total Read-only volume descriptors handed to local clients.\n"
      "# TYPE swrdma_local_fds_sent_total counter\n"
      "swrdma_local_fds_sent_total {}\n"
      "# HELP swrdma_local_lookups_total Fids looked up over the local socket.\n"
      "# TYPE swrdma_local_lookups_total counter\n"
      "swrdma_local_lookups_total {}\n"
      "# HELP swrdma_local_malformed_total Local-socket requests that did not parse.\n"
      "# TYPE swrdma_local_malformed_total counter\n"
      "swrdma_local_malformed_total {}\n"
      "# HELP swrdma_local_open_connections Local-socket connections open now.\n"
      "# TYPE swrdma_local_open_connections gauge\n"
      "swrdma_local_open_connections {}\n",
      s.connections, s.refused, s.fds_sent, s.lookups, s.malformed, s.open_connections);
}

bool LocalServer::Allowed(int fd, std::string& why) const {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    why = fmt::format("SO_PEERCRED failed: {}", std::strerror(errno));
    return false;
  }
  if (cred.uid == 0 || cred.uid == ::geteuid() || Contains(options_.allow_uids, cred.uid) ||
      Contains(options_.allow_gids, cred.gid)) {
    return true;
  }
  if (!options_.allow_gids.empty()) {
    for (uint32_t g : SupplementaryGroups(cred.pid)) {
      if (Contains(options_.allow_gids, g)) return true;
    }
  }
  why = fmt::format(
      "uid {} gid {} (pid {}) is not allowed to read volumes over this socket; the agent's "
      "operator can add it with --local-allow-uids or --local-allow-gids",
      cred.uid, cred.gid, cred.pid);
  return false;
}

void LocalServer::Loop() {
  std::vector<pollfd> fds;
  fds.push_back({wake_.get(), POLLIN, 0});
  fds.push_back({listener_.get(), POLLIN, 0});
  while (!stopping_.load()) {
    const int r = ::poll(fds.data(), fds.size(), -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      spdlog::error("local socket {}: poll: {}; same-host reads stop", options_.path.string(),
                    std::strerror(errno));
      break;
    }
    if (fds[0].revents != 0) break;
    // Connections first (their indexes shift when one closes), then new ones.
    for (size_t i = 2; i < fds.size();) {
      if (fds[i].revents == 0) {
        ++i;
        continue;
      }
      bool keep = (fds[i].revents & POLLIN) != 0 && Serve(fds[i].fd);
      if (!keep) {
        ::close(fds[i].fd);
        open_.fetch_sub(1);
        fds.erase(fds.begin() + static_cast<ptrdiff_t>(i));
        continue;
      }
      fds[i].revents = 0;
      ++i;
    }
    if (fds[1].revents & POLLIN) {
      while (true) {
        rdma::UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c) break;  // EAGAIN: drained (other errors: try again on the next wake-up)
        std::string why;
        bool ok = Allowed(c.get(), why);
        if (ok && fds.size() - 2 >= options_.max_connections) {
          ok = false;
          why = fmt::format("too many local clients ({}); try again later or use another path",
                            options_.max_connections);
        }
        if (!ok) {
          refused_.fetch_add(1);
          spdlog::warn("local socket {}: refused: {}", options_.path.string(), why);
          LocalHelloReply deny;
          deny.status = LocalStatus::kDenied;
          deny.reason = why;
          rdma::SendMessage(c.get(), EncodeHelloReply(deny)).IgnoreError();
          continue;  // closed by c's destructor
        }
        // A client that stops reading must not stall every other one: sends give up after 2 s
        // (the connection is then closed).
        timeval tv{2, 0};
        ::setsockopt(c.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        // The greeting comes first, unasked: a client reads before it writes, so a refused one
        // (above) never has a request unread here when we close (which would reset its
        // connection before it could read why).
        LocalHelloReply hello;
        hello.instance = instance_;
        if (!rdma::SendMessage(c.get(), EncodeHelloReply(hello)).ok()) continue;
        connections_.fetch_add(1);
        open_.fetch_add(1);
        fds.push_back({c.Release(), POLLIN, 0});
      }
    }
  }
  for (size_t i = 2; i < fds.size(); ++i) {
    ::close(fds[i].fd);
    open_.fetch_sub(1);
  }
}

bool LocalServer::Serve(int fd) {
  // Connections are blocking; a request is one packet, read without waiting (POLLIN was set).
  auto msg = rdma::ReceiveMessage(fd, kMaxLocalMessage, std::chrono::milliseconds(0));
  if (!msg || msg->bytes.empty()) return false;  // error or EOF
  auto req = DecodeLocalRequest(msg->bytes);
  if (!req) {
    malformed_.fetch_add(1);
    spdlog::debug("local socket: {}", req.error().ToString());
    return false;
  }
  switch (req->op) {
    case LocalOp::kHello: {
      LocalHelloReply hello;
      hello.instance = instance_;
      return rdma::SendMessage(fd, EncodeHelloReply(hello)).ok();
    }
    case LocalOp::kOpen: {
      LocalOpenReply reply;
      reply.volume_id = req->volume_id;
      auto map = volumes_.snapshot();
      auto it = map->volumes.find(req->volume_id);
      if (it == map->volumes.end()) {
        reply.status = LocalStatus::kUnknownVolume;
        reply.reason = fmt::format("volume {} is not exported by this agent", req->volume_id);
        return rdma::SendMessage(fd, EncodeOpenReply(reply)).ok();
      }
      const ExportedVolume& exp = *it->second.exported;
      // O_RDONLY only: a descriptor handed out can never write the volume.
      rdma::UniqueFd file(::open(exp.files().dat.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
      // The path may name a newer file than the export (a vacuum renamed over it, not yet
      // scanned): its superblock (version, compaction revision) differs then. Such a client
      // would only fail its checks, but it is told to ask again instead.
      uint8_t head[8] = {};
      const auto served = exp.bytes();
      if (!file) {
        reply.status = LocalStatus::kInternal;
        reply.reason =
            fmt::format("opening {}: {}", exp.files().dat.string(), std::strerror(errno));
      } else if (served.size() < sizeof(head) ||
                 ::pread(file.get(), head, sizeof(head), 0) != sizeof(head) ||
                 std::memcmp(head, served.data(), sizeof(head)) != 0) {
        reply.status = LocalStatus::kStale;
        reply.reason =
            fmt::format("volume {} is being replaced (vacuum); ask again shortly", req->volume_id);
      } else {
        reply.generation = exp.generation();
        reply.size = exp.size();
        reply.version = static_cast<uint8_t>(exp.version());
      }
      const bool ok = reply.status == LocalStatus::kOk;
      // Counted before the send: a client that got it may look at the metrics at once.
      if (ok) fds_sent_.fetch_add(1);
      if (!rdma::SendMessage(fd, EncodeOpenReply(reply), ok ? file.get() : -1).ok()) {
        if (ok) fds_sent_.fetch_sub(1);
        return false;
      }
      return true;
    }
    case LocalOp::kLookup: {
      lookups_.fetch_add(req->fids.size());
      LookupRequest lr;
      lr.fids = std::move(req->fids);
      LookupResponse resp = volumes_.Lookup(lr);
      auto map = volumes_.snapshot();
      std::vector<LocalLookupEntry> out(resp.results.size());
      for (size_t i = 0; i < out.size(); ++i) {
        const LookupResult& r = resp.results[i];
        LocalLookupEntry& e = out[i];
        e.status = FromLookup(r.status);
        e.volume_id = r.volume_id;
        if (r.status != LookupStatus::kOk) {
          e.reason = r.error;
          continue;
        }
        if (r.ec) {
          // EC pieces lie in several shard files: no single descriptor serves them. The client
          // reads these with checked reads (the agent assembles the record from its shards).
          e.status = LocalStatus::kChecked;
          e.reason = fmt::format(
              "volume {} is erasure-coded: read with a checked read (the agent's read port)",
              r.volume_id);
          continue;
        }
        e.generation = r.generation;
        e.length = r.length;
        e.size = r.size;
        // The HTTP answer carries the agent's address; the file offset is that minus the base of
        // the same export (generation checked: the map may have moved on in between).
        auto it = map->volumes.find(r.volume_id);
        if (it == map->volumes.end() || it->second.exported->generation() != r.generation) {
          e.status = LocalStatus::kStale;
          e.reason = "the volume was re-exported during the lookup; ask again";
          continue;
        }
        e.offset = r.address - it->second.exported->base_address();
        e.version = static_cast<uint8_t>(it->second.exported->version());
      }
      return rdma::SendMessage(fd, EncodeLookupReply(LocalStatus::kOk, out)).ok();
    }
  }
  return false;
}

}  // namespace swrdma::agent
