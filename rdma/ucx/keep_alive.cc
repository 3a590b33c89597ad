#include "rdma/ucx/keep_alive.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

namespace swrdma::rdma {
namespace {

// Never destroyed (allocated once, never deleted), so neither exit nor LSan's check sees it freed,
// and what it points at stays reachable from the global below.
struct Kept {
  std::mutex mu;
  std::vector<ucp_context_h> contexts;
  std::vector<void*> objects;
};
Kept* kept = new Kept;
std::atomic<uint64_t> workers_kept{0};
std::atomic<bool> ucx_kept_alive{false};

}  // namespace

void KeepUcxContextAlive(ucp_context_h context) {
  if (context == nullptr) return;
  ucx_kept_alive.store(true);
  std::lock_guard lock(kept->mu);
  if (std::find(kept->contexts.begin(), kept->contexts.end(), context) == kept->contexts.end()) {
    kept->contexts.push_back(context);
  }
}

bool UcxContextKeptAlive(ucp_context_h context) {
  if (!ucx_kept_alive.load()) return false;
  std::lock_guard lock(kept->mu);
  return std::find(kept->contexts.begin(), kept->contexts.end(), context) != kept->contexts.end();
}

void KeepUcxObjectAlive(void* object) {
  ucx_kept_alive.store(true);
  workers_kept.fetch_add(1);
  std::lock_guard lock(kept->mu);
  kept->objects.push_back(object);
}

uint64_t UcxWorkersKeptAlive() {
  return workers_kept.load();
}

}  // namespace swrdma::rdma

#if defined(__SANITIZE_ADDRESS__)
#define SWRDMA_KEEP_ALIVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SWRDMA_KEEP_ALIVE_ASAN 1
#endif
#endif

#ifdef SWRDMA_KEEP_ALIVE_ASAN
// LeakSanitizer asks for these when it first checks (at exit, or __lsan_do_leak_check), so they
// apply only to a process that kept UCX alive on purpose. Module names, not functions: UCX is
// built without frame pointers and LSan's stacks stop inside it.
extern "C" __attribute__((visibility("default"), used)) const char* __lsan_default_suppressions() {
  return swrdma::rdma::ucx_kept_alive.load()
             ? "leak:libucs.so\nleak:libuct.so\nleak:libucp.so\nleak:libucm.so\n"
             : "";
}
#endif
