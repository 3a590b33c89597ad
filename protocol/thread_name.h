// Names the calling thread (as `top -H`, `ps -L` and /proc/PID/task/TID/comm show it), so that an
// operator, or the VM test's per-thread CPU figures, can tell the agent's threads apart.
#pragma once

#include <pthread.h>

#include <string>
#include <string_view>

namespace swrdma {

inline void NameThisThread(std::string_view name) {
  std::string n(name.substr(0, 15));  // the kernel keeps 15 characters
  (void)pthread_setname_np(pthread_self(), n.c_str());
}

}  // namespace swrdma
