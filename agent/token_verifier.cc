#include "agent/token_verifier.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/agent_config.h"
#include "agent/read_auth.h"

namespace swrdma::agent {

namespace {

// Little-endian writer and a bounds-checked reader: the verifier reads what a possibly
// compromised data plane sends.
class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(v); }
  void U16(uint16_t v) { Le(v, 2); }
  void U64(uint64_t v) { Le(v, 8); }
  void Text(std::string_view s) {
    const size_t n = std::min(s.size(), size_t{0xFFFF});
    U16(static_cast<uint16_t>(n));
    out_.insert(out_.end(), s.begin(), s.begin() + static_cast<ptrdiff_t>(n));
  }
  std::vector<uint8_t> Take() { return std::move(out_); }

 private:
  void Le(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
      out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  bool U8(uint8_t& v) {
    uint64_t x = 0;
    if (!Le(x, 1)) return false;
    v = static_cast<uint8_t>(x);
    return true;
  }
  bool U64(uint64_t& v) { return Le(v, 8); }
  bool Text(std::string& s) {
    uint64_t n = 0;
    if (!Le(n, 2) || n > in_.size() - at_) return false;
    s.assign(reinterpret_cast<const char*>(in_.data() + at_), n);
    at_ += n;
    return true;
  }
  bool done() const { return at_ == in_.size(); }

 private:
  bool Le(uint64_t& v, int bytes) {
    if (in_.size() - at_ < static_cast<size_t>(bytes)) return false;
    v = 0;
    for (int i = 0; i < bytes; ++i)
      v |= uint64_t{in_[at_ + i]} << (8 * i);
    at_ += bytes;
    return true;
  }
  std::span<const uint8_t> in_;
  size_t at_ = 0;
};

Status Malformed(std::string_view what, std::string_view why) {
  return Status(Code::kInvalidArgument, fmt::format("verifier {}: {}", what, why));
}

bool KnownOp(uint8_t op) {
  return op >= 1 && op <= 3;
}

}  // namespace

std::vector<uint8_t> EncodeVerifierRequest(const VerifierRequest& r) {
  Writer w;
  w.U8(static_cast<uint8_t>(r.op));
  w.U64(r.id);
  w.Text(r.token);
  return w.Take();
}

Result<VerifierRequest> DecodeVerifierRequest(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxVerifierMessage) return Error(Malformed("request", "too long"));
  Reader r(bytes);
  VerifierRequest out;
  uint8_t op = 0;
  if (!r.U8(op) || !r.U64(out.id) || !r.Text(out.token)) {
    return Error(Malformed("request", "truncated"));
  }
  if (!r.done()) return Error(Malformed("request", "trailing bytes"));
  if (!KnownOp(op)) return Error(Malformed("request", fmt::format("unknown op {}", op)));
  out.op = static_cast<VerifierOp>(op);
  return out;
}

std::vector<uint8_t> EncodeVerifierReply(const VerifierReply& r) {
  Writer w;
  w.U8(static_cast<uint8_t>(r.op));
  w.U64(r.id);
  w.U8(static_cast<uint8_t>(r.status));
  w.U8(r.enabled ? 1 : 0);
  w.U8(r.claims.exp ? 1 : 0);
  w.U64(static_cast<uint64_t>(r.claims.exp.value_or(0)));
  w.U8(r.claims.nbf ? 1 : 0);
  w.U64(static_cast<uint64_t>(r.claims.nbf.value_or(0)));
  w.Text(r.claims.fid);
  w.Text(r.text.substr(0, 2048));
  return w.Take();
}

Result<VerifierReply> DecodeVerifierReply(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxVerifierMessage) return Error(Malformed("reply", "too long"));
  Reader r(bytes);
  VerifierReply out;
  uint8_t op = 0, status = 0, enabled = 0, has_exp = 0, has_nbf = 0;
  uint64_t exp = 0, nbf = 0;
  if (!r.U8(op) || !r.U64(out.id) || !r.U8(status) || !r.U8(enabled) || !r.U8(has_exp) ||
      !r.U64(exp) || !r.U8(has_nbf) || !r.U64(nbf) || !r.Text(out.claims.fid) ||
      !r.Text(out.text) || !r.done()) {
    return Error(Malformed("reply", "truncated or trailing bytes"));
  }
  if (!KnownOp(op) || status > 2) return Error(Malformed("reply", "unknown op or status"));
  out.op = static_cast<VerifierOp>(op);
  out.status = static_cast<VerdictStatus>(status);
  out.enabled = enabled != 0;
  if (has_exp) out.claims.exp = static_cast<int64_t>(exp);
  if (has_nbf) out.claims.nbf = static_cast<int64_t>(nbf);
  return out;
}

std::vector<uint8_t> AnswerVerifierRequest(std::span<const uint8_t> request, ReadAuthorizer& auth) {
  VerifierReply reply;
  reply.enabled = auth.enabled();
  auto req = DecodeVerifierRequest(request);
  if (!req) {
    reply.status = VerdictStatus::kBadRequest;
    reply.text = req.error().message();
    return EncodeVerifierReply(reply);
  }
  reply.op = req->op;
  reply.id = req->id;
  switch (req->op) {
    case VerifierOp::kVerify: {
      auto claims = auth.Verify(req->token);
      if (!claims) {
        reply.status = VerdictStatus::kRefused;
        reply.text = claims.error().message();
      } else if (*claims) {
        reply.claims = std::move(**claims);
      }
      break;
    }
    case VerifierOp::kReload:
      if (Status s = auth.Reload(); !s.ok()) {
        reply.status = VerdictStatus::kRefused;
        reply.text = s.ToString();
      } else {
        reply.text = auth.source();
      }
      break;
    case VerifierOp::kHello:
      reply.text = auth.source();
      break;
  }
  reply.enabled = auth.enabled();
  return EncodeVerifierReply(reply);
}

int ServeVerdicts(int fd, ReadAuthorizer& auth) {
  std::vector<uint8_t> buf(kMaxVerifierMessage + 1);
  while (true) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n == 0) return 0;  // every data-plane process is gone
    if (n < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    const auto reply =
        AnswerVerifierRequest(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)), auth);
    while (::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
  }
}

Result<std::unique_ptr<RemoteVerifier>> RemoteVerifier::Open(int fd,
                                                             std::chrono::milliseconds timeout) {
  std::unique_ptr<RemoteVerifier> v(new RemoteVerifier(fd));
  v->timeout_ = timeout;
  std::lock_guard lock(v->mu_);
  auto hello = v->Ask(VerifierOp::kHello, {});
  if (!hello) {
    return Error(hello.error().WithContext(
        "the read-token verifier process (it holds the read key) did not answer"));
  }
  v->enabled_ = hello->enabled;
  v->source_ = hello->text;
  return v;
}

RemoteVerifier::RemoteVerifier(int fd)
    : fd_(fd), next_id_((static_cast<uint64_t>(::getpid()) << 32) | 1) {}

RemoteVerifier::~RemoteVerifier() {
  ::close(fd_);
}

Result<VerifierReply> RemoteVerifier::Ask(VerifierOp op, std::string_view token) {
  if (token.size() > kMaxVerifierMessage - 16) {
    return Error(Code::kPermissionDenied, "token too long");
  }
  const uint64_t id = next_id_++;
  const auto request = EncodeVerifierRequest({op, id, std::string(token)});
  ssize_t sent;
  while ((sent = ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  if (sent < 0) {
    return Error(Code::kUnavailable,
                 fmt::format("read-token verifier: send: {} (is it still running? restart the "
                             "agent)",
                             std::strerror(errno)));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  std::vector<uint8_t> buf(kMaxVerifierMessage + 1);
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return Error(Code::kUnavailable, "read-token verifier: no answer in time");
    }
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // the deadline check above ends it
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      return Error(Code::kUnavailable,
                   "read-token verifier: the process is gone (every token is refused until the "
                   "agent is restarted)");
    }
    auto reply = DecodeVerifierReply(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
    // Another id: an answer a crashed predecessor of this process asked for; not ours.
    if (!reply || reply->id != id) continue;
    return reply;
  }
}

Result<std::optional<ReadClaims>> RemoteVerifier::Verify(std::string_view token) {
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::lock_guard lock(mu_);
  if (!enabled_) return std::optional<ReadClaims>();
  ReadClaims claims;
  if (auto it = valid_.find(std::string(token)); it != valid_.end()) {
    claims = it->second;
  } else {
    auto asked = Ask(VerifierOp::kVerify, token);
    if (!asked) {
      if (asked.error().code() == Code::kUnavailable && !said_gone_) {
        said_gone_ = true;  // once: every later token fails the same way
        spdlog::error("{}; every read that needs a token is refused", asked.error().message());
      }
      return Error(asked.error());
    }
    VerifierReply& reply = *asked;
    enabled_ = reply.enabled;
    if (!enabled_) return std::optional<ReadClaims>();
    if (reply.status != VerdictStatus::kOk) {
      return Error(Code::kPermissionDenied, reply.text);
    }
    claims = std::move(reply.claims);
    if (valid_.size() >= 65536) valid_.clear();  // bounded; tokens live seconds
    valid_.emplace(std::string(token), claims);
  }
  // The verifier checked exp and nbf when it answered; a cached answer is checked again here.
  if (claims.exp && now >= *claims.exp) {
    valid_.erase(std::string(token));
    return Error(Code::kPermissionDenied, "token expired");
  }
  if (claims.nbf && now < *claims.nbf) return Error(Code::kPermissionDenied, "token not valid yet");
  return std::optional<ReadClaims>(std::move(claims));
}

Status RemoteVerifier::Reload() {
  std::lock_guard lock(mu_);
  valid_.clear();
  auto reply = Ask(VerifierOp::kReload, {});
  if (!reply) return reply.error();
  enabled_ = reply->enabled;
  if (reply->status != VerdictStatus::kOk) return Status(Code::kInvalidArgument, reply->text);
  source_ = reply->text;
  return Status::Ok();
}

bool RemoteVerifier::enabled() const {
  std::lock_guard lock(mu_);
  return enabled_;
}

std::string RemoteVerifier::source() const {
  std::lock_guard lock(mu_);
  return source_;
}

namespace {

// This process's argv without the key's flag, and its environment without the key's variables.
std::vector<std::string> ArgsWithoutKey(char** argv) {
  std::vector<std::string> out;
  for (int i = 0; argv[i] != nullptr; ++i) {
    const std::string_view a = argv[i];
    if (a == "--jwt-read-key") {
      if (argv[i + 1] != nullptr) ++i;  // and its value
      continue;
    }
    if (a.starts_with("--jwt-read-key=")) continue;
    out.emplace_back(a);
  }
  return out;
}

std::vector<std::string> EnvironmentWithoutKey(int fd) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view v = *e;
    if (v.starts_with("SWRDMA_JWT_READ_KEY=") || v.starts_with("WEED_JWT_SIGNING_READ_KEY=") ||
        v.starts_with(std::string(kVerifierFdEnv) + "=")) {
      continue;
    }
    out.emplace_back(v);
  }
  out.push_back(fmt::format("{}={}", kVerifierFdEnv, fd));
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

void SeparateReadKey(const AgentConfig& config, char** argv) {
  if (std::getenv(kVerifierFdEnv) != nullptr || config.list_devices || config.no_read_auth) return;
  ReadKeySource source =
      FindReadKeySource(config.jwt_read_key, config.security_toml, ProcessEnvironment(),
                        WeedConfigDirs(ProcessEnvironment()("HOME")));
  auto auth = ReadAuthorizer::Open(source);
  // Errors (a bad security.toml) and "no key" are the agent's to report as before.
  if (!auth || !(*auth)->enabled()) return;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0) {
    spdlog::error("read key: socketpair failed: {}; the key stays in the serving process",
                  std::strerror(errno));
    return;
  }
  ::fcntl(sv[0], F_SETFD, FD_CLOEXEC);
  const pid_t pid = ::fork();
  if (pid < 0) {
    spdlog::error("read key: fork failed: {}; the key stays in the serving process",
                  std::strerror(errno));
    ::close(sv[0]);
    ::close(sv[1]);
    return;
  }
  if (pid == 0) {
    ::close(sv[1]);
    // Not dumpable: a process of the agent's user cannot ptrace it, read /proc/PID/mem or
    // process_vm_readv it (the key stays here even if the data plane is taken over).
    ::prctl(PR_SET_DUMPABLE, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives the agent, even on kill -9 of it
    ::prctl(PR_SET_NAME, "swrdma-verify");
    // Signals for the agent reach us too when sent to its process group (timeout(1), a
    // terminal, KillMode=control-group): the agent stops and closes the socket, then we exit.
    // Reloads come as requests.
    ::signal(SIGHUP, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGPIPE, SIG_IGN);
    if (::getppid() == 1) ::_exit(1);
    ::_exit(ServeVerdicts(sv[0], **auth));
  }
  ::close(sv[0]);
  auto args = ArgsWithoutKey(argv);
  auto env = EnvironmentWithoutKey(sv[1]);
  auto arg_ptrs = Pointers(args);
  auto env_ptrs = Pointers(env);
  // The binary by its own path (the process name, comm, is taken from it: "swrdma-agent", as
  // operators and pgrep know it); /proc/self/exe when it was replaced or removed on disk.
  std::error_code ec;
  std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec || self.ends_with(" (deleted)")) self = "/proc/self/exe";
  ::execve(self.c_str(), arg_ptrs.data(), env_ptrs.data());
  spdlog::error("read key: execve({}) failed: {}; the key stays in the serving process", self,
                std::strerror(errno));
  ::kill(pid, SIGTERM);
  ::close(sv[1]);
}

}  // namespace swrdma::agent
