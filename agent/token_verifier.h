// Keeps the read key out of the process that serves clients.
//
// The data plane (HTTP, UCX active messages, the TCP read port, the local socket) parses whatever
// peers send; a memory-safety bug there could hand a peer bytes of its memory. So when a read key
// is found, swrdma-agent starts a verifier process that holds the key and does nothing else, and
// replaces its own image (execve of /proc/self/exe) without the key in argv or the environment:
// the process that then supervises and serves never had the key in its memory. It sends each
// read token to the verifier over a socketpair and gets back the token's claims (fid, exp, nbf)
// or why it is refused; claims are cached per token until they expire.
//
// The verifier is not dumpable (no ptrace, no /proc/PID/mem, no process_vm_readv from the agent's
// user), ignores SIGTERM, SIGINT and SIGHUP (meant for the agent), is killed with its parent, and
// exits when the last data-plane process closes the socket. A dead verifier fails closed: every
// token is refused; the supervisor then stops the agent with an error, so that the service
// manager starts it again with a new verifier.
//
// Wire format (SOCK_SEQPACKET, one message per datagram, little-endian, sizes bounded):
//   request  u8 op (1 verify, 2 reload, 3 hello) | u64 id | u16 n | n bytes (the token)
//   reply    u8 op | u64 id | u8 status (0 ok, 1 refused, 2 bad request) | u8 enabled |
//            u8 has_exp | i64 exp | u8 has_nbf | i64 nbf | u16 n | n bytes fid claim |
//            u16 m | m bytes text (the refusal, or the key's source for hello/reload)
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/jwt.h"
#include "protocol/status.h"

namespace swrdma::agent {

class ReadAuthorizer;
struct AgentConfig;

// Names the data-plane end of the verifier's socket in the re-executed agent.
inline constexpr const char* kVerifierFdEnv = "SWRDMA_VERIFIER_FD";
inline constexpr size_t kMaxVerifierMessage = 8192;

enum class VerifierOp : uint8_t { kVerify = 1, kReload = 2, kHello = 3 };
enum class VerdictStatus : uint8_t { kOk = 0, kRefused = 1, kBadRequest = 2 };

struct VerifierRequest {
  VerifierOp op = VerifierOp::kVerify;
  uint64_t id = 0;
  std::string token;
};

struct VerifierReply {
  VerifierOp op = VerifierOp::kVerify;
  uint64_t id = 0;
  VerdictStatus status = VerdictStatus::kOk;
  bool enabled = false;
  ReadClaims claims;
  std::string text;
};

std::vector<uint8_t> EncodeVerifierRequest(const VerifierRequest& r);
Result<VerifierRequest> DecodeVerifierRequest(std::span<const uint8_t> bytes);
std::vector<uint8_t> EncodeVerifierReply(const VerifierReply& r);
Result<VerifierReply> DecodeVerifierReply(std::span<const uint8_t> bytes);

// The verifier's answer to one request (bad requests get a kBadRequest reply, never a crash).
std::vector<uint8_t> AnswerVerifierRequest(std::span<const uint8_t> request, ReadAuthorizer& auth);

// The verifier's loop: answers requests on `fd` until every peer closed it. Returns an exit code.
int ServeVerdicts(int fd, ReadAuthorizer& auth);

// The data plane's side: one socket shared by its threads (one request in flight at a time) and
// a cache of valid tokens' claims.
class RemoteVerifier {
 public:
  // Takes `fd` and says hello: fails when the verifier does not answer within `timeout`.
  static Result<std::unique_ptr<RemoteVerifier>> Open(
      int fd, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~RemoteVerifier();
  RemoteVerifier(const RemoteVerifier&) = delete;
  RemoteVerifier& operator=(const RemoteVerifier&) = delete;

  // The token's claims (checked against the clock here, also when cached); nullopt when the
  // verifier has no key (authorization off). kPermissionDenied with the verifier's reason, or
  // kUnavailable when it cannot be asked (then every token is refused).
  Result<std::optional<ReadClaims>> Verify(std::string_view token);
  // Asks the verifier to re-read security.toml; the cache is dropped.
  Status Reload();
  bool enabled() const;
  std::string source() const;

 private:
  explicit RemoteVerifier(int fd);
  Result<VerifierReply> Ask(VerifierOp op, std::string_view token);  // mu_ held

  const int fd_;
  std::chrono::milliseconds timeout_{std::chrono::seconds(5)};
  mutable std::mutex mu_;
  // Starts at pid << 32: a reply meant for a crashed predecessor (same socket) never matches.
  uint64_t next_id_;                                   // guarded by mu_
  bool enabled_ = false;                               // guarded by mu_
  bool said_gone_ = false;                             // guarded by mu_
  std::string source_;                                 // guarded by mu_
  std::unordered_map<std::string, ReadClaims> valid_;  // guarded by mu_
};

// Called first thing in main(), before any thread: when `config` finds a read key (and the agent
// will serve), starts the verifier process with it and execve()s this binary again without the
// key (argv, SWRDMA_JWT_READ_KEY, WEED_JWT_SIGNING_READ_KEY removed; kVerifierFdEnv set). Returns
// only when there is nothing to do (no key, already re-executed, --no-read-auth, --list-devices)
// or execve failed (logged: the key then stays in this process, as before).
void SeparateReadKey(const AgentConfig& config, char** argv);

}  // namespace swrdma::agent
