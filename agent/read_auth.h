// Read authorization with SeaweedFS's own read tokens (see protocol/jwt.h).
//
// The key comes from --jwt-read-key / SWRDMA_JWT_READ_KEY, or from SeaweedFS's security.toml
// (`[jwt.signing.read] key`), the file the volume server reads. With neither, or an empty key,
// authorization is off, as on a volume server. Reload() (SIGHUP) re-reads security.toml; an
// unreadable or invalid file keeps the key in force and reports why. The key itself is never
// logged or returned.
//
// Thread-safe: Check runs on every HTTP thread while Reload runs on the main thread.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "http/http_server.h"
#include "protocol/jwt.h"
#include "protocol/status.h"

namespace swrdma::agent {

struct ReadKeySource {
  std::optional<std::string> key;                      // flag or env: wins over the file
  std::optional<std::filesystem::path> security_toml;  // SeaweedFS security.toml
};

// `[jwt.signing.read] key` of a SeaweedFS security.toml: the key, or empty when the file has none
// (authorization off). Errors name the file and what is wrong with it.
Result<std::string> ReadKeyFromSecurityToml(const std::filesystem::path& path);

class ReadAuthorizer {
 public:
  static Result<std::unique_ptr<ReadAuthorizer>> Open(const ReadKeySource& source);

  // Re-reads security.toml (no-op for a key given directly). On error the old key stays.
  Status Reload();

  bool enabled() const { return key_.load()->size() > 0; }
  // "flag", "security.toml <path>" or "none": where the key in force came from (for logs).
  std::string source() const;

  // The token a request carries, looked up like the volume server: `?jwt=`, then
  // `Authorization: Bearer <t>`, then cookie `AT`. Empty when none.
  static std::string TokenOf(const HttpRequest& request);

  // Ok when authorization is off, or `token` is valid now and covers `fid`. Otherwise
  // kPermissionDenied with the reason, for logs only.
  Status Check(std::string_view token, std::string_view fid) const;
  // Ok when authorization is off or the token is valid now (for any fid); its claims otherwise.
  Result<std::optional<ReadClaims>> Verify(std::string_view token) const;

  uint64_t denied() const { return denied_.load(std::memory_order_relaxed); }

 private:
  explicit ReadAuthorizer(ReadKeySource source) : source_(std::move(source)) {}

  ReadKeySource source_;
  std::atomic<std::shared_ptr<const std::string>> key_{std::make_shared<const std::string>()};
  mutable std::atomic<uint64_t> denied_{0};
};

// 401 {"error":"wrong jwt"}, exactly what the volume server answers; nothing else in the body.
HttpResponse WrongJwt();

}  // namespace swrdma::agent
