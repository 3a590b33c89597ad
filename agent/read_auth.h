// Read authorization with SeaweedFS's own read tokens (see protocol/jwt.h).
//
// The key comes from --jwt-read-key / SWRDMA_JWT_READ_KEY, or is found as the volume server finds
// it (FindReadKeySource): WEED_JWT_SIGNING_READ_KEY, then `[jwt.signing.read] key` of the
// security.toml given with --security-toml or else the first one in weed's search path. With
// none, or an empty key, authorization is off, as on a volume server. Reload() (SIGHUP) re-reads
// security.toml; an unreadable or invalid file keeps the key in force and reports why. The key
// itself is never logged or returned.
//
// Thread-safe: Check runs on every HTTP thread while Reload runs on the main thread.
//
// In a supervised agent with a key the key is not here at all: OpenRemote asks the verifier
// process that holds it (agent/token_verifier.h); Check and Verify behave the same.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/http_server.h"
#include "protocol/jwt.h"
#include "protocol/status.h"

namespace swrdma::agent {

struct ReadKeySource {
  std::optional<std::string> key;                      // flag or env: wins over the file
  std::optional<std::filesystem::path> security_toml;  // SeaweedFS security.toml
  std::string key_origin = {};  // where `key` came from, for logs (default: the flag)
};

// The directories weed searches for security.toml (weed/util/config.go LoadConfiguration), in
// its order: ".", "$HOME/.seaweedfs", "/usr/local/etc/seaweedfs", "/etc/seaweedfs" (no HOME:
// that one is skipped). "." is the agent's working directory, which need not be the volume
// server's: pass --security-toml when they differ.
std::vector<std::filesystem::path> WeedConfigDirs(const std::optional<std::string>& home);

// Where the read key comes from, as weed's viper would find it:
//   1. `flag_key` (--jwt-read-key / SWRDMA_JWT_READ_KEY): ours, explicit, wins;
//   2. WEED_JWT_SIGNING_READ_KEY (weed reads its config with AutomaticEnv, prefix WEED; an empty
//      value counts as unset, as in viper);
//   3. `explicit_toml` (--security-toml), else the first security.toml in `search_dirs`.
// Nothing found: an empty source (authorization off). `env` looks a variable up.
ReadKeySource FindReadKeySource(
    const std::optional<std::string>& flag_key,
    const std::optional<std::filesystem::path>& explicit_toml,
    const std::function<std::optional<std::string>(const std::string&)>& env,
    const std::vector<std::filesystem::path>& search_dirs);

// `[jwt.signing.read] key` of a SeaweedFS security.toml: the key, or empty when the file has none
// (authorization off). Errors name the file and what is wrong with it.
Result<std::string> ReadKeyFromSecurityToml(const std::filesystem::path& path);

class RemoteVerifier;

class ReadAuthorizer {
 public:
  static Result<std::unique_ptr<ReadAuthorizer>> Open(const ReadKeySource& source);
  // Without the key: asks the verifier process on `fd` (agent/token_verifier.h), which holds it.
  static Result<std::unique_ptr<ReadAuthorizer>> OpenRemote(int fd);
  ~ReadAuthorizer();

  // Re-reads security.toml (no-op for a key given directly). On error the old key stays.
  Status Reload();

  bool enabled() const;
  // True when the key is in another process (OpenRemote).
  bool remote() const { return remote_ != nullptr; }
  // "flag", "security.toml <path>" or "none": where the key in force came from (for logs).
  std::string source() const;

  // The token a request carries, looked up like the volume server: `?jwt=`, then
  // `Authorization: Bearer <t>`, then cookie `AT`. Empty when none.
  static std::string TokenOf(const HttpRequest& request);

  // Ok when authorization is off, or `token` is valid now and covers `fid`. Otherwise
  // kPermissionDenied with the reason, for logs only. `verified`, when given, is set to whether
  // a token was checked (false: authorization is off).
  Status Check(std::string_view token, std::string_view fid, bool* verified = nullptr) const;
  // Ok when authorization is off or the token is valid now (for any fid); its claims otherwise.
  Result<std::optional<ReadClaims>> Verify(std::string_view token) const;

  uint64_t denied() const { return denied_.load(std::memory_order_relaxed); }

 private:
  explicit ReadAuthorizer(ReadKeySource source);  // in the .cc: RemoteVerifier is complete there

  ReadKeySource source_;
  std::atomic<std::shared_ptr<const std::string>> key_{std::make_shared<const std::string>()};
  // Whether key_ is non-empty: without a key every read asks this, not key_ (an atomic
  // shared_ptr load takes a lock bit and a reference count each time, a few % of a read).
  std::atomic<bool> key_set_{false};
  void SetKey(std::string key);
  std::unique_ptr<RemoteVerifier> remote_;  // set: key_ stays empty, the verifier decides
  mutable std::atomic<uint64_t> denied_{0};
};

// 401 {"error":"wrong jwt"}, exactly what the volume server answers; nothing else in the body.
HttpResponse WrongJwt();

}  // namespace swrdma::agent
