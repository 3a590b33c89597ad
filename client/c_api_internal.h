// Shared by the C API's translation units (client/c_api.cc, client/c_api_each.cc): the handle
// and the status helpers. Not installed, not part of the API.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "client/client.h"
#include "client/cluster_client.h"
#include "client/swrdma.h"
#include "protocol/status.h"

struct swrdma_client {
  // Exactly one of the two: an agent's Client, or (options.master_url) a ClusterClient that
  // finds each volume's agents through the master.
  std::unique_ptr<swrdma::client::Client> client;
  std::unique_ptr<swrdma::client::ClusterClient> cluster;
  std::string last_error;
  // Reused from call to call: their capacity stays, so a read allocates no fid or token copies
  // beyond what the Client itself does.
  swrdma::client::ReadOptions read_options;
  std::vector<std::string> fids;
};

namespace swrdma::c_api {

int ToStatus(Code code);
// Records `s` (or `status` and `message`) as the last error and returns the status.
int Fail(std::string& last_error, const Status& s);
int Fail(std::string& last_error, int status, std::string_view message);
// The exception being handled, as a status (and *last_error). Must be called in a catch block.
int Caught(std::string* last_error) noexcept;

// The verified data of one read, gunzipped unless `raw` (into *plain when that is needed):
// SWRDMA_OK and *data, or the status and *message of why not.
int Verified(const Result<client::NeedleView>& view, std::string_view fid, bool raw,
             std::vector<uint8_t>* plain, std::span<const uint8_t>* data, std::string* message);
// Copies data into buf (cap bytes): SWRDMA_OK, or SWRDMA_E_TOO_SMALL; *len_out = data.size().
int CopyOut(std::span<const uint8_t> data, std::string_view fid, void* buf, size_t cap,
            size_t* len_out, std::string* message);

// One read's outcome, as handed to a consumer: on SWRDMA_OK `data` is the verified data
// (gunzipped unless raw); otherwise `message` says why (naming the fid).
using OnData = void (*)(void* ctx, size_t index, int status, std::span<const uint8_t> data,
                        const std::string& message);

// Reads fids[i] (tokens in client->read_options) through the client or the cluster, calling
// on_data once per index, in completion order. Sets client->fids. Does not throw from on_data.
void ReadEachAny(swrdma_client* client, size_t n, const char* const* fids, const char* const* jwts,
                 bool raw, OnData on_data, void* ctx);

}  // namespace swrdma::c_api
