#include "client/agent_pool.h"

#include <fmt/format.h>

namespace swrdma::client {

struct AgentPool::Slot {
  std::vector<std::unique_ptr<Client>> idle;
  size_t total = 0;  // idle + leased + being connected
  std::condition_variable returned;
};

AgentPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_),
      slot_(other.slot_),
      client_(std::move(other.client_)),
      discard_(other.discard_) {
  other.pool_ = nullptr;
}

AgentPool::Lease::~Lease() {
  if (pool_ && client_) pool_->Release(slot_, std::move(client_), discard_);
}

AgentPool::AgentPool(AgentPoolOptions options) : options_(std::move(options)) {
  if (options_.clients_per_agent == 0) options_.clients_per_agent = 1;
}

AgentPool::~AgentPool() = default;

Result<AgentPool::Lease> AgentPool::Acquire(const std::string& agent_url) {
  std::unique_lock lock(mu_);
  auto it = slots_.find(agent_url);
  if (it == slots_.end()) {
    if (slots_.size() >= options_.max_agents) {
      return Error(Code::kResourceExhausted,
                   fmt::format("{} agents in use already; not connecting to {} (more volume "
                               "servers than expected? check the addresses sent)",
                               slots_.size(), agent_url));
    }
    it = slots_.emplace(agent_url, std::make_unique<Slot>()).first;
  }
  Slot* slot = it->second.get();
  const auto deadline = std::chrono::steady_clock::now() + options_.client.timeout;
  while (true) {
    if (!slot->idle.empty()) {
      std::unique_ptr<Client> c = std::move(slot->idle.back());
      slot->idle.pop_back();
      return Lease(this, slot, std::move(c));
    }
    if (slot->total < options_.clients_per_agent) {
      ++slot->total;
      lock.unlock();  // connecting takes a round trip or a timeout: others keep going
      ClientOptions o = options_.client;
      o.agent_url = agent_url;
      auto c = Client::Connect(o);
      lock.lock();
      if (!c) {
        --slot->total;
        slot->returned.notify_one();
        return Error(c.error());
      }
      connected_.fetch_add(1, std::memory_order_relaxed);
      return Lease(this, slot, std::move(*c));
    }
    if (slot->returned.wait_until(lock, deadline) == std::cv_status::timeout &&
        slot->idle.empty() && slot->total >= options_.clients_per_agent) {
      return Error(
          Code::kResourceExhausted,
          fmt::format("all {} clients of agent {} stayed busy for {} ms",
                      options_.clients_per_agent, agent_url, options_.client.timeout.count()));
    }
  }
}

void AgentPool::Release(Slot* slot, std::unique_ptr<Client> client, bool discard) {
  {
    std::lock_guard lock(mu_);
    if (discard) {
      --slot->total;
      connected_.fetch_sub(1, std::memory_order_relaxed);
    } else {
      slot->idle.push_back(std::move(client));
    }
    slot->returned.notify_one();
  }
  // A discarded Client (UCX worker and endpoint) is destroyed here, outside the lock.
}

}  // namespace swrdma::client
