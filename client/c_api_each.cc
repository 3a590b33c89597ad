// The C API's streaming read (swrdma_read_each), the read loop every batch goes through, and
// swrdma_client_info. See client/swrdma.h.
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "client/c_api_internal.h"
#include "client/swrdma.h"

using swrdma::Code;
using swrdma::Status;
using swrdma::client::NeedleView;

namespace swrdma::c_api {

void ReadEachAny(swrdma_client* client, size_t n, const char* const* fids, const char* const* jwts,
                 bool raw, OnData on_data, void* ctx) {
  client::ReadOptions& ro = client->read_options;
  ro.decompress = !raw;
  ro.jwt.clear();
  ro.jwts.resize(jwts != nullptr ? n : 0);
  client->fids.resize(n);
  for (size_t i = 0; i < n; ++i) {
    client->fids[i].assign(fids[i]);
    if (jwts != nullptr) ro.jwts[i].assign(jwts[i] != nullptr ? jwts[i] : "");
  }
  static const std::string kNoMessage;
  if (client->cluster) {
    // Through the master: owned, already gunzipped data (ClusterClient has no views), in order.
    auto results = client->cluster->ReadMany(client->fids, ro);
    for (size_t i = 0; i < n; ++i) {
      if (results[i]) {
        on_data(ctx, i, SWRDMA_OK, results[i]->data, kNoMessage);
      } else {
        on_data(ctx, i, ToStatus(results[i].error().code()), {}, results[i].error().ToString());
      }
    }
    return;
  }
  // The callback never throws: an exception must not unwind through the read round with gets
  // in flight.
  client->client->ReadEach(
      client->fids,
      [&](size_t i, Result<NeedleView> view) {
        std::string message;
        std::vector<uint8_t> plain;
        std::span<const uint8_t> data;
        int status = SWRDMA_E_INTERNAL;
        try {
          status = Verified(view, client->fids[i], raw, &plain, &data, &message);
        } catch (...) {
          status = Caught(&message);
        }
        on_data(ctx, i, status, status == SWRDMA_OK ? data : std::span<const uint8_t>{}, message);
      },
      ro);
}

}  // namespace swrdma::c_api

using namespace swrdma::c_api;

extern "C" {

int swrdma_read_each(swrdma_client_t* client, size_t n, const char* const* fids,
                     const char* const* jwts, uint32_t flags, swrdma_read_fn on_read, void* ctx) {
  if (client == nullptr) return SWRDMA_E_INVALID_ARGUMENT;
  try {
    client->last_error.clear();
    if (n == 0) return SWRDMA_OK;
    if (fids == nullptr || on_read == nullptr) {
      return Fail(client->last_error, SWRDMA_E_INVALID_ARGUMENT,
                  "fids and on_read must not be NULL");
    }
    for (size_t i = 0; i < n; ++i) {
      if (fids[i] == nullptr) {
        return Fail(client->last_error, SWRDMA_E_INVALID_ARGUMENT,
                    fmt::format("entry {}: fids[i] must not be NULL", i));
      }
    }
    struct Ctx {
      swrdma_read_fn on_read;
      void* ctx;
      size_t first_failed;
      int first_status;
      std::string first_message;
    } c{on_read, ctx, n, SWRDMA_OK, {}};
    OnData on_data = [](void* p, size_t i, int status, std::span<const uint8_t> data,
                        const std::string& message) {
      auto& c = *static_cast<Ctx*>(p);
      c.on_read(c.ctx, i, status, status == SWRDMA_OK ? data.data() : nullptr,
                status == SWRDMA_OK ? data.size() : 0, status == SWRDMA_OK ? "" : message.c_str());
      if (status != SWRDMA_OK && i < c.first_failed) {
        c.first_failed = i;
        c.first_status = status;
        c.first_message = message;
      }
    };
    ReadEachAny(client, n, fids, jwts, (flags & SWRDMA_READ_RAW) != 0, on_data, &c);
    if (c.first_failed == n) return SWRDMA_OK;
    client->last_error = std::move(c.first_message);
    return c.first_status;
  } catch (...) {
    return Caught(&client->last_error);
  }
}

int swrdma_client_info(swrdma_client_t* client, char* buf, size_t cap, size_t* len_out) {
  if (client == nullptr) return SWRDMA_E_INVALID_ARGUMENT;
  try {
    client->last_error.clear();
    if (len_out == nullptr || (buf == nullptr && cap != 0)) {
      return Fail(client->last_error, SWRDMA_E_INVALID_ARGUMENT,
                  "len_out must not be NULL, nor buf when cap > 0");
    }
    *len_out = 0;
    nlohmann::json j;
    j["library_version"] = swrdma_version();
    if (client->cluster) {
      const auto& s = client->cluster->stats();
      j["master_url"] = client->cluster->master().master_url();
      j["reads"] = s.reads;
      j["failovers"] = s.failovers;
      j["connects"] = s.connects;
      j["connect_failures"] = s.connect_failures;
    } else {
      swrdma::client::Client& c = *client->client;
      const swrdma::AgentInfo& a = c.agent_info();
      j["agent_version"] = a.agent_version;
      j["agent_transports"] = a.transports;
      j["exposure"] = a.exposure;
      j["volume_count"] = a.volume_count;
      auto transports = c.Transports();
      if (!transports) return Fail(client->last_error, transports.error());
      j["transports"] = *transports;
      auto volumes = c.Volumes();
      if (!volumes) return Fail(client->last_error, volumes.error());
      j["volumes"] = nlohmann::json::array();
      for (const auto& v : volumes->volumes) {
        j["volumes"].push_back({{"id", v.volume_id},
                                {"collection", v.collection},
                                {"version", v.version},
                                {"size", v.size},
                                {"live_needles", v.live_needles},
                                {"deleted_needles", v.deleted_needles},
                                {"generation", v.generation}});
      }
    }
    const std::string text = j.dump();
    *len_out = text.size();
    if (cap < text.size() + 1) {
      return Fail(client->last_error, SWRDMA_E_TOO_SMALL,
                  fmt::format("needs {} bytes with the NUL, got {}", text.size() + 1, cap));
    }
    std::memcpy(buf, text.c_str(), text.size() + 1);
    return SWRDMA_OK;
  } catch (...) {
    return Caught(&client->last_error);
  }
}

}  // extern "C"
