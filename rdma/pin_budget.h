// How much memory registrations for remote access may pin.
//
// A registration with a NIC that has no on-demand paging pins every page it covers until it is
// deregistered: the page cache pages of a volume file stay in RAM and count against
// RLIMIT_MEMLOCK (unless the process has CAP_IPC_LOCK). A volume server holds terabytes, so an
// agent that registered every volume would pin more than the machine has. PinBudget is the
// limit (--max-pinned-bytes): registrations reserve their length first and release it when they
// go; what does not fit is left unregistered and served by checked reads instead (the agent
// reads and sends it), so nothing becomes unreadable, only slower.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace swrdma::rdma {

class PinBudget {
 public:
  static constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

  // Reserved bytes, given back when destroyed. Move-only; an empty one (moved from) holds none.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& o) noexcept : budget_(o.budget_), bytes_(o.bytes_) {
      o.budget_ = nullptr;
      o.bytes_ = 0;
    }
    Reservation& operator=(Reservation&& o) noexcept;
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    ~Reservation() { Release(); }
    uint64_t bytes() const { return bytes_; }

   private:
    friend class PinBudget;
    Reservation(PinBudget* budget, uint64_t bytes) : budget_(budget), bytes_(bytes) {}
    void Release();
    PinBudget* budget_ = nullptr;
    uint64_t bytes_ = 0;
  };

  explicit PinBudget(uint64_t limit) : limit_(limit) {}
  PinBudget(const PinBudget&) = delete;
  PinBudget& operator=(const PinBudget&) = delete;

  // `bytes` more pinned if that stays within the limit; nullopt (counted in refusals()) if not.
  // The budget must outlive every reservation it hands out.
  std::optional<Reservation> TryReserve(uint64_t bytes);

  uint64_t limit() const { return limit_; }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t refusals() const { return refusals_.load(std::memory_order_relaxed); }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
  std::atomic<uint64_t> refusals_{0};
};

// The default limit and why: half of physical memory, and no more than RLIMIT_MEMLOCK when the
// process lacks CAP_IPC_LOCK (the kernel refuses to pin past it then).
struct DefaultPinLimit {
  uint64_t bytes = PinBudget::kUnlimited;
  std::string why;  // for the start-up log: "half of 23.4 GiB of RAM", "RLIMIT_MEMLOCK ..."
};
DefaultPinLimit ChooseDefaultPinLimit();

// "auto" (nullopt: ChooseDefaultPinLimit), "unlimited", or a size: bytes, or a number with a
// K/M/G/T suffix (powers of 1024; "KiB", "MB" and such are read the same). "0" pins nothing:
// every read is then a checked read.
Result<std::optional<uint64_t>> ParsePinLimit(std::string_view text);

// "12.0 GiB", "unlimited".
std::string PinLimitText(uint64_t limit);

}  // namespace swrdma::rdma
