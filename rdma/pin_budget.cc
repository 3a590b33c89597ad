#include "rdma/pin_budget.h"

#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "protocol/byte_size.h"

namespace swrdma::rdma {

PinBudget::Reservation& PinBudget::Reservation::operator=(Reservation&& o) noexcept {
  if (this != &o) {
    Release();
    budget_ = o.budget_;
    bytes_ = o.bytes_;
    o.budget_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void PinBudget::Reservation::Release() {
  if (budget_ != nullptr && bytes_ > 0) budget_->used_.fetch_sub(bytes_, std::memory_order_relaxed);
  budget_ = nullptr;
  bytes_ = 0;
}

std::optional<PinBudget::Reservation> PinBudget::TryReserve(uint64_t bytes) {
  uint64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit_ || used > limit_ - bytes) {
      refusals_.fetch_add(1, std::memory_order_relaxed);
      return std::nullopt;
    }
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return Reservation(this, bytes);
}

namespace {

// CAP_IPC_LOCK in the effective set (/proc/self/status CapEff, bit 14): the kernel then pins
// past RLIMIT_MEMLOCK.
bool CanLockPastLimit() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("CapEff:")) continue;
    const size_t at = line.find_first_not_of(" \t", 7);
    if (at == std::string::npos) return false;
    uint64_t caps = 0;
    const auto [p, ec] = std::from_chars(line.data() + at, line.data() + line.size(), caps, 16);
    return ec == std::errc() && ((caps >> 14) & 1) != 0;
  }
  return false;
}

}  // namespace

DefaultPinLimit ChooseDefaultPinLimit() {
  DefaultPinLimit out;
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) {
    const uint64_t ram = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
    out.bytes = ram / 2;
    out.why = fmt::format("half of {} of RAM", HumanBytes(ram));
  } else {
    out.why = "RAM size unknown";
  }
  rlimit lim{};
  if (!CanLockPastLimit() && ::getrlimit(RLIMIT_MEMLOCK, &lim) == 0 &&
      lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < out.bytes) {
    out.bytes = lim.rlim_cur;
    out.why = fmt::format(
        "RLIMIT_MEMLOCK ({}; no CAP_IPC_LOCK): raise LimitMEMLOCK= in the unit to pin more",
        HumanBytes(lim.rlim_cur));
  }
  return out;
}

Result<std::optional<uint64_t>> ParsePinLimit(std::string_view text) {
  if (text == "auto") return std::optional<uint64_t>();
  if (text == "unlimited") return std::optional<uint64_t>(PinBudget::kUnlimited);
  auto bytes = ParseByteSize(text);
  if (!bytes) {
    return Error(Code::kInvalidArgument,
                 fmt::format("{}, 'auto' or 'unlimited'", bytes.error().message()));
  }
  return std::optional<uint64_t>(*bytes);
}

std::string PinLimitText(uint64_t limit) {
  return limit == PinBudget::kUnlimited ? "unlimited" : HumanBytes(limit);
}

}  // namespace swrdma::rdma
