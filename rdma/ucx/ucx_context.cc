#include "rdma/ucx/ucx_context.h"

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include "rdma/ucx/capture_output.h"
#include "rdma/ucx/keep_alive.h"
#include "rdma/ucx/ucx_status.h"

namespace swrdma::rdma {
namespace {

struct ConfigDeleter {
  void operator()(ucp_config_t* config) const { ucp_config_release(config); }
};
using ConfigPtr = std::unique_ptr<ucp_config_t, ConfigDeleter>;

Status Modify(ucp_config_t* config, const std::string& name, const std::string& value) {
  return FromUcs(ucp_config_modify(config, name.c_str(), value.c_str()),
                 "setting UCX option UCX_" + name + "=" + value +
                     " (check the name and value against `ucx_info -c`)");
}

// Could UCX_TLS `tls` select one of the transports `members` (or a group of them, named by one of
// `aliases`)? (Setting an option of a transport that no interface uses makes UCX warn "invalid
// configuration" on every worker.) A leading '^' selects everything but the names that follow.
bool MaySelect(std::string_view tls, std::initializer_list<std::string_view> aliases,
               std::initializer_list<std::string_view> members) {
  if (tls.empty()) return true;
  const bool negated = tls.starts_with('^');
  if (negated) tls.remove_prefix(1);
  auto listed = [](std::initializer_list<std::string_view> names, std::string_view t) {
    return std::find(names.begin(), names.end(), t) != names.end();
  };
  size_t members_named = 0;
  for (size_t pos = 0; pos <= tls.size();) {
    size_t comma = tls.find(',', pos);
    if (comma == std::string_view::npos) comma = tls.size();
    std::string_view t = tls.substr(pos, comma - pos);
    if (t.starts_with('\\')) t.remove_prefix(1);  // a leading backslash: no alias expansion
    if (t == "all" || listed(aliases, t)) return !negated;
    if (listed(members, t)) {
      if (!negated) return true;
      ++members_named;
    }
    pos = comma + 1;
  }
  // "^a,b": selectable unless every member is excluded.
  return negated && members_named < members.size();
}

bool MaySelectSharedMemory(std::string_view tls) {
  return MaySelect(tls, {"sm", "shm", "mm"}, {"posix", "sysv"});
}

bool MaySelectTcp(std::string_view tls) {
  return MaySelect(tls, {}, {"tcp"});
}

bool IsYes(std::string_view value) {
  return value == "y" || value == "yes" || value == "on" || value == "1" || value == "Y" ||
         value == "YES" || value == "ON";
}

// Is shared-memory peer error handling on after the environment and `config`? nullopt: unset.
std::optional<bool> ExplicitShmErrorHandling(const std::map<std::string, std::string>& config) {
  std::optional<bool> on;
  for (const char* name : {"MM_ERROR_HANDLING", "POSIX_ERROR_HANDLING", "SYSV_ERROR_HANDLING"}) {
    if (auto it = config.find(name); it != config.end()) {
      on = on.value_or(false) || IsYes(it->second);
    } else if (const char* env = std::getenv((std::string("UCX_") + name).c_str())) {
      on = on.value_or(false) || IsYes(env);
    }
  }
  return on;
}

}  // namespace

Result<UcxContext> UcxContext::Create(const UcxContextOptions& options) {
  ucp_config_t* raw_config = nullptr;
  SWRDMA_RETURN_IF_ERROR(FromUcs(ucp_config_read(nullptr, nullptr, &raw_config),
                                 "reading UCX configuration from the environment"));
  ConfigPtr config(raw_config);

  std::string transports;
  if (options.transports) {
    SWRDMA_RETURN_IF_ERROR(Modify(config.get(), "TLS", *options.transports));
    transports = *options.transports;
  } else if (const char* env = std::getenv("UCX_TLS"); env != nullptr) {
    transports = env;
  } else {
    transports = "all (UCX default)";
  }
  if (options.net_devices) {
    SWRDMA_RETURN_IF_ERROR(Modify(config.get(), "NET_DEVICES", *options.net_devices));
  }
  const std::optional<bool> explicit_shm = ExplicitShmErrorHandling(options.config);
  const char* tls_env = std::getenv("UCX_TLS");
  const std::string_view tls = options.transports   ? std::string_view(*options.transports)
                               : tls_env != nullptr ? std::string_view(tls_env)
                                                    : std::string_view();
  bool shm_peer_failure = explicit_shm.value_or(false);
  if (!explicit_shm && options.shm_peer_failure && MaySelectSharedMemory(tls)) {
    SWRDMA_RETURN_IF_ERROR(Modify(config.get(), "MM_ERROR_HANDLING", "y"));
    shm_peer_failure = true;
  }
  if (options.tcp_segment_bytes > 0 && MaySelectTcp(tls)) {
    // ucp_config_modify keeps a name it does not know and later applies it to each transport's
    // own table, whose fields carry no transport prefix: "TX_SEG_SIZE", not "TCP_TX_SEG_SIZE"
    // (that one is "unused", UCX warns, and nothing changes). Only tcp has these two fields.
    for (const std::string field : {"TX_SEG_SIZE", "RX_SEG_SIZE"}) {
      const std::string full = "TCP_" + field;
      if (options.config.contains(field) || options.config.contains(full) ||
          std::getenv(("UCX_" + full).c_str()) != nullptr) {
        continue;  // set by the caller or the environment: theirs
      }
      SWRDMA_RETURN_IF_ERROR(
          Modify(config.get(), field, std::to_string(options.tcp_segment_bytes)));
    }
  }
  for (const auto& [name, value] : options.config) {
    SWRDMA_RETURN_IF_ERROR(Modify(config.get(), name, value));
  }

  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_AM;
  if (options.rma) params.features |= UCP_FEATURE_RMA;
  if (options.wakeup) params.features |= UCP_FEATURE_WAKEUP;

  ucp_context_h context = nullptr;
  Status status = FromUcs(ucp_init(&params, config.get(), &context),
                          "initializing UCX (ucp_init) with UCX_TLS=" + transports);
  if (!status.ok()) {
    return Error(status.code(),
                 status.message() + "; check UCX_TLS / UCX_NET_DEVICES against `ucx_info -d`");
  }
  UcxContext out(context, options.wakeup, std::move(transports));
  out.shm_peer_failure_ = shm_peer_failure;
  return out;
}

UcxContext::UcxContext(UcxContext&& other) noexcept
    : context_(std::exchange(other.context_, nullptr)),
      wakeup_(other.wakeup_),
      shm_peer_failure_(other.shm_peer_failure_),
      transports_(std::move(other.transports_)) {}

UcxContext& UcxContext::operator=(UcxContext&& other) noexcept {
  if (this != &other) {
    if (context_ != nullptr && !UcxContextKeptAlive(context_)) ucp_cleanup(context_);
    context_ = std::exchange(other.context_, nullptr);
    wakeup_ = other.wakeup_;
    shm_peer_failure_ = other.shm_peer_failure_;
    transports_ = std::move(other.transports_);
  }
  return *this;
}

UcxContext::~UcxContext() {
  // A worker of this context was kept alive (UcxWorker::KeepAlive): cleaning up would free
  // memory it still uses.
  if (context_ != nullptr && !UcxContextKeptAlive(context_)) ucp_cleanup(context_);
}

std::string UcxContext::PrintInfo() const {
  if (context_ == nullptr) return {};
  return CaptureOutput([this](FILE* stream) { ucp_context_print_info(context_, stream); });
}

}  // namespace swrdma::rdma
