// Clients shared by many threads: per agent URL, up to `clients_per_agent` connected Clients,
// each leased to one thread at a time (a Client owns a UCX worker and is single-threaded). A
// thread that finds every Client of its agent busy waits for one, at most the client timeout.
//
//   AgentPool pool({.client = options, .clients_per_agent = 4});
//   auto lease = pool.Acquire("http://10.0.0.5:18515");
//   if (lease) auto data = (*lease)->Read(fid);   // returned to the pool when `lease` dies
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/client.h"
#include "protocol/status.h"

namespace swrdma::client {

struct AgentPoolOptions {
  ClientOptions client;  // agent_url is set per agent
  size_t clients_per_agent = 4;
  size_t max_agents = 1024;  // distinct agent URLs; more is kResourceExhausted
};

class AgentPool {
 public:
  struct Slot;

  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    ~Lease();  // back to the pool, unless Discard()ed
    Client* operator->() const { return client_.get(); }
    Client& operator*() const { return *client_; }
    // The Client is broken (its agent went away): close it instead of returning it.
    void Discard() { discard_ = true; }

   private:
    friend class AgentPool;
    Lease(AgentPool* pool, Slot* slot, std::unique_ptr<Client> client)
        : pool_(pool), slot_(slot), client_(std::move(client)) {}
    AgentPool* pool_;
    Slot* slot_;
    std::unique_ptr<Client> client_;
    bool discard_ = false;
  };

  explicit AgentPool(AgentPoolOptions options);
  ~AgentPool();
  AgentPool(const AgentPool&) = delete;
  AgentPool& operator=(const AgentPool&) = delete;

  // An idle Client of `agent_url`, or a newly connected one while fewer than clients_per_agent
  // exist, or the first one returned within the client timeout (kResourceExhausted after that).
  // Connect failures are returned as Client::Connect reports them.
  Result<Lease> Acquire(const std::string& agent_url);

  // Clients connected now (idle or leased), over every agent.
  size_t connected() const { return connected_.load(std::memory_order_relaxed); }

 private:
  void Release(Slot* slot, std::unique_ptr<Client> client, bool discard);

  AgentPoolOptions options_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Slot>> slots_;  // guarded by mu_
  std::atomic<size_t> connected_{0};
};

}  // namespace swrdma::client
