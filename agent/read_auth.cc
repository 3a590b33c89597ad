#include "agent/read_auth.h"

#include <cctype>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "agent/token_verifier.h"

namespace swrdma::agent {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

std::string_view CookieValue(std::string_view cookies, std::string_view name) {
  while (!cookies.empty()) {
    const size_t semi = cookies.find(';');
    std::string_view pair = Trim(cookies.substr(0, semi));
    cookies = semi == std::string_view::npos ? std::string_view() : cookies.substr(semi + 1);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && Trim(pair.substr(0, eq)) == name) {
      std::string_view v = Trim(pair.substr(eq + 1));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return v;
    }
  }
  return {};
}

}  // namespace

Result<std::string> ReadKeyFromSecurityToml(const std::filesystem::path& path) {
  toml::table root;
  try {
    root = toml::parse_file(path.string());
  } catch (const toml::parse_error& e) {
    return Error(Code::kInvalidArgument,
                 fmt::format("reading {}: {} (line {}); fix the file or pass --jwt-read-key",
                             path.string(), e.description(), e.source().begin.line));
  } catch (const std::exception& e) {
    return Error(Code::kIOError, fmt::format("reading {}: {}", path.string(), e.what()));
  }
  const toml::node_view key = root["jwt"]["signing"]["read"]["key"];
  if (!key) return std::string();  // no read key: authorization off, as on the volume server
  if (!key.is_string()) {
    return Error(Code::kInvalidArgument,
                 fmt::format("{}: [jwt.signing.read] key must be a string", path.string()));
  }
  return std::string(*key.value<std::string>());
}

std::vector<std::filesystem::path> WeedConfigDirs(const std::optional<std::string>& home) {
  std::vector<std::filesystem::path> dirs{"."};
  if (home && !home->empty()) dirs.push_back(std::filesystem::path(*home) / ".seaweedfs");
  dirs.emplace_back("/usr/local/etc/seaweedfs");
  dirs.emplace_back("/etc/seaweedfs");
  return dirs;
}

ReadKeySource FindReadKeySource(
    const std::optional<std::string>& flag_key,
    const std::optional<std::filesystem::path>& explicit_toml,
    const std::function<std::optional<std::string>(const std::string&)>& env,
    const std::vector<std::filesystem::path>& search_dirs) {
  ReadKeySource out;
  if (flag_key) {
    out.key = flag_key;
    out.key_origin = "--jwt-read-key / SWRDMA_JWT_READ_KEY";
    return out;
  }
  if (auto weed_env = env("WEED_JWT_SIGNING_READ_KEY"); weed_env && !weed_env->empty()) {
    out.key = weed_env;
    out.key_origin = "WEED_JWT_SIGNING_READ_KEY";
    return out;
  }
  if (explicit_toml) {
    out.security_toml = explicit_toml;
    return out;
  }
  for (const auto& dir : search_dirs) {
    std::error_code ec;
    const auto candidate = dir / "security.toml";
    if (std::filesystem::is_regular_file(candidate, ec)) {
      out.security_toml = candidate;
      return out;
    }
  }
  return out;
}

Result<std::unique_ptr<ReadAuthorizer>> ReadAuthorizer::Open(const ReadKeySource& source) {
  std::unique_ptr<ReadAuthorizer> auth(new ReadAuthorizer(source));
  if (source.key) {
    auth->SetKey(*source.key);
  } else if (source.security_toml) {
    SWRDMA_RETURN_IF_ERROR(auth->Reload());
  }
  return auth;
}

Result<std::unique_ptr<ReadAuthorizer>> ReadAuthorizer::OpenRemote(int fd) {
  SWRDMA_ASSIGN_OR_RETURN(auto remote, RemoteVerifier::Open(fd));
  std::unique_ptr<ReadAuthorizer> auth(new ReadAuthorizer(ReadKeySource{}));
  auth->remote_ = std::move(remote);
  return auth;
}

ReadAuthorizer::ReadAuthorizer(ReadKeySource source) : source_(std::move(source)) {}

ReadAuthorizer::~ReadAuthorizer() = default;

bool ReadAuthorizer::enabled() const {
  return remote_ ? remote_->enabled() : key_set_.load(std::memory_order_acquire);
}

Status ReadAuthorizer::Reload() {
  if (remote_) return remote_->Reload();
  if (source_.key || !source_.security_toml) return Status();
  auto key = ReadKeyFromSecurityToml(*source_.security_toml);
  if (!key) return key.error();
  SetKey(std::move(*key));
  return Status();
}

void ReadAuthorizer::SetKey(std::string key) {
  const bool set = !key.empty();
  key_.store(std::make_shared<const std::string>(std::move(key)));
  key_set_.store(set, std::memory_order_release);
}

std::string ReadAuthorizer::source() const {
  if (!enabled()) return "none (reads are not authorized)";
  if (remote_) return remote_->source() + ", held by the verifier process";
  if (source_.key) {
    return source_.key_origin.empty() ? "--jwt-read-key / SWRDMA_JWT_READ_KEY" : source_.key_origin;
  }
  return fmt::format("{} [jwt.signing.read]", source_.security_toml->string());
}

std::string ReadAuthorizer::TokenOf(const HttpRequest& request) {
  std::string_view token = request.QueryParam("jwt").value_or("");
  if (token.empty()) {
    if (auto bearer = request.Header("Authorization"); bearer && bearer->size() > 7) {
      std::string word(bearer->substr(0, 6));
      for (char& c : word)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (word == "BEARER") token = bearer->substr(7);
    }
  }
  if (token.empty()) {
    if (auto cookies = request.Header("Cookie")) token = CookieValue(*cookies, "AT");
  }
  return std::string(token);
}

Result<std::optional<ReadClaims>> ReadAuthorizer::Verify(std::string_view token) const {
  if (remote_) {
    auto claims = remote_->Verify(token);
    if (!claims) denied_.fetch_add(1, std::memory_order_relaxed);
    return claims;
  }
  if (!key_set_.load(std::memory_order_acquire)) return std::optional<ReadClaims>();
  const auto key = key_.load();
  if (key->empty()) return std::optional<ReadClaims>();
  auto claims = VerifyReadJwt(token, *key, std::chrono::system_clock::now());
  if (!claims) {
    denied_.fetch_add(1, std::memory_order_relaxed);
    return Error(claims.error());
  }
  return std::optional<ReadClaims>(std::move(*claims));
}

Status ReadAuthorizer::Check(std::string_view token, std::string_view fid, bool* verified) const {
  SWRDMA_ASSIGN_OR_RETURN(auto claims, Verify(token));
  if (verified != nullptr) *verified = claims.has_value();
  if (!claims) return Status();
  Status s = CheckFidClaim(*claims, fid);
  if (!s.ok()) denied_.fetch_add(1, std::memory_order_relaxed);
  return s;
}

HttpResponse WrongJwt() {
  return HttpResponse::Json(401, R"({"error":"wrong jwt"})");
}

}  // namespace swrdma::agent
