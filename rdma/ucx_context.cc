#include "rdma/ucx_context.h"

#include <cstdlib>
#include <memory>
#include <utility>

#include "rdma/capture_output.h"
#include "rdma/ucx_status.h"

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
  for (const auto& [name, value] : options.config) {
    SWRDMA_RETURN_IF_ERROR(Modify(config.get(), name, value));
  }

  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_AM;
  if (options.wakeup) params.features |= UCP_FEATURE_WAKEUP;

  ucp_context_h context = nullptr;
  Status status = FromUcs(ucp_init(&params, config.get(), &context),
                          "initializing UCX (ucp_init) with UCX_TLS=" + transports);
  if (!status.ok()) {
    return Error(status.code(),
                 status.message() + "; check UCX_TLS / UCX_NET_DEVICES against `ucx_info -d`");
  }
  return UcxContext(context, options.wakeup, std::move(transports));
}

UcxContext::UcxContext(UcxContext&& other) noexcept
    : context_(std::exchange(other.context_, nullptr)),
      wakeup_(other.wakeup_),
      transports_(std::move(other.transports_)) {}

UcxContext& UcxContext::operator=(UcxContext&& other) noexcept {
  if (this != &other) {
    if (context_ != nullptr) ucp_cleanup(context_);
    context_ = std::exchange(other.context_, nullptr);
    wakeup_ = other.wakeup_;
    transports_ = std::move(other.transports_);
  }
  return *this;
}

UcxContext::~UcxContext() {
  if (context_ != nullptr) ucp_cleanup(context_);
}

std::string UcxContext::PrintInfo() const {
  if (context_ == nullptr) return {};
  return CaptureOutput([this](FILE* stream) { ucp_context_print_info(context_, stream); });
}

}  // namespace swrdma::rdma
