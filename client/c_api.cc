// The C API (client/swrdma.h) over client::Client. Zero-copy views underneath: a verified record
// is copied once, from the registered buffer it landed in straight into the caller's buffer
// (gunzipped on the way when asked). Every entry point catches every exception: a C caller
// cannot unwind one.
#include "client/swrdma.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "client/c_api_internal.h"
#include "client/client.h"
#include "protocol/gzip.h"
#include "protocol/status.h"

#ifndef SWRDMA_VERSION
#define SWRDMA_VERSION "0.0.0"
#endif

using swrdma::Code;
using swrdma::Status;
using swrdma::client::NeedleView;

namespace swrdma::c_api {

int ToStatus(Code code) {
  switch (code) {
    case Code::kOk:
      return SWRDMA_OK;
    case Code::kInvalidArgument:
      return SWRDMA_E_INVALID_ARGUMENT;
    case Code::kNotFound:
      return SWRDMA_E_NOT_FOUND;
    case Code::kDeleted:
      return SWRDMA_E_DELETED;
    case Code::kUnknownVolume:
      return SWRDMA_E_UNKNOWN_VOLUME;
    case Code::kStale:
      return SWRDMA_E_STALE;
    case Code::kCorruption:
      return SWRDMA_E_CORRUPTION;
    case Code::kChecksumMismatch:
      return SWRDMA_E_CRC;
    case Code::kIOError:
      return SWRDMA_E_IO;
    case Code::kTimeout:
      return SWRDMA_E_TIMEOUT;
    case Code::kUnavailable:
      return SWRDMA_E_UNAVAILABLE;
    case Code::kPermissionDenied:
      return SWRDMA_E_AUTH;
    case Code::kResourceExhausted:
      return SWRDMA_E_RESOURCE_EXHAUSTED;
    case Code::kUnsupported:
      return SWRDMA_E_UNSUPPORTED;
    case Code::kRdmaNoDevice:
      return SWRDMA_E_NO_DEVICE;
    case Code::kRdmaTransport:
      return SWRDMA_E_TRANSPORT;
    case Code::kRdmaRemoteAccess:
      return SWRDMA_E_REMOTE_ACCESS;
    case Code::kCancelled:
      return SWRDMA_E_CANCELLED;
    case Code::kInternal:
      return SWRDMA_E_INTERNAL;
  }
  return SWRDMA_E_INTERNAL;
}

// Records `s` as the last error (the message names the code, as Status::ToString does).
int Fail(std::string& last_error, const Status& s) {
  last_error = s.ToString();
  return ToStatus(s.code());
}

int Fail(std::string& last_error, int status, std::string_view message) {
  last_error = fmt::format("{}: {}", swrdma_strerror(status), message);
  return status;
}

// The exception an entry point caught, as a status. Must not throw itself.
int Caught(std::string* last_error) noexcept {
  int status = SWRDMA_E_INTERNAL;
  const char* what = "unknown exception";
  try {
    throw;
  } catch (const std::bad_alloc&) {
    status = SWRDMA_E_RESOURCE_EXHAUSTED;
    what = "out of memory";
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  if (last_error != nullptr) {
    try {
      *last_error = fmt::format("{}: {}", swrdma_strerror(status), what);
    } catch (...) {
      last_error->clear();
    }
  }
  return status;
}

// The verified data of one read, gunzipped unless `raw` (a view read over the HTTP fallback is
// already as asked; gunzipped data lands in *plain). SWRDMA_OK and *data, or the status and
// *message of why not.
int Verified(const swrdma::Result<NeedleView>& view, std::string_view fid, bool raw,
             std::vector<uint8_t>* plain, std::span<const uint8_t>* data, std::string* message) {
  if (!view) {
    *message = view.error().ToString();
    return ToStatus(view.error().code());
  }
  if (!raw && view->is_chunk_manifest()) {  // as Client::Read (issue 15, 1)
    *message = Status(Code::kUnsupported,
                      fmt::format("{}: is a chunk manifest (needle flag 0x80): read its chunks, or "
                                  "the manifest itself raw",
                                  fid))
                   .ToString();
    return ToStatus(Code::kUnsupported);
  }
  *data = view->data();
  if (!raw && view->stored_gzipped() && !view->decompressed()) {
    auto p = swrdma::DecompressNeedleData(*data);
    if (!p) {
      *message = Status(p.error().code(), fmt::format("{}: verified gzip data does not "
                                                      "decompress: {}",
                                                      fid, p.error().message()))
                     .ToString();
      return ToStatus(p.error().code());
    }
    *plain = std::move(*p);
    *data = *plain;
  }
  return SWRDMA_OK;
}

int CopyOut(std::span<const uint8_t> data, std::string_view fid, void* buf, size_t cap,
            size_t* len_out, std::string* message) {
  *len_out = data.size();
  if (data.size() > cap) {
    *message = fmt::format("{}: {}: needs a buffer of {} bytes, got {}",
                           swrdma_strerror(SWRDMA_E_TOO_SMALL), fid, data.size(), cap);
    return SWRDMA_E_TOO_SMALL;
  }
  if (!data.empty()) std::memcpy(buf, data.data(), data.size());
  return SWRDMA_OK;
}

}  // namespace swrdma::c_api

namespace {

using namespace swrdma::c_api;

thread_local std::string g_open_error;  // swrdma_last_error(NULL)

// One read's outcome: the view's data copied into the caller's buffer, or the status and
// message of why not.
int Outcome(swrdma::Result<NeedleView> view, std::string_view fid, bool raw, void* buf, size_t cap,
            size_t* len_out, std::string* message) {
  *len_out = 0;
  std::vector<uint8_t> plain;
  std::span<const uint8_t> data;
  const int status = Verified(view, fid, raw, &plain, &data, message);
  return status != SWRDMA_OK ? status : CopyOut(data, fid, buf, cap, len_out, message);
}

}  // namespace

extern "C" {

const char* swrdma_version(void) {
  return SWRDMA_VERSION;
}

const char* swrdma_strerror(int status) {
  switch (status) {
    case SWRDMA_OK:
      return "ok";
    case SWRDMA_E_INVALID_ARGUMENT:
      return "invalid_argument";
    case SWRDMA_E_NOT_FOUND:
      return "not_found";
    case SWRDMA_E_DELETED:
      return "deleted";
    case SWRDMA_E_UNKNOWN_VOLUME:
      return "unknown_volume";
    case SWRDMA_E_STALE:
      return "stale";
    case SWRDMA_E_CORRUPTION:
      return "corruption";
    case SWRDMA_E_CRC:
      return "checksum_mismatch";
    case SWRDMA_E_IO:
      return "io_error";
    case SWRDMA_E_TIMEOUT:
      return "timeout";
    case SWRDMA_E_UNAVAILABLE:
      return "unavailable";
    case SWRDMA_E_AUTH:
      return "permission_denied";
    case SWRDMA_E_RESOURCE_EXHAUSTED:
      return "resource_exhausted";
    case SWRDMA_E_UNSUPPORTED:
      return "unsupported";
    case SWRDMA_E_NO_DEVICE:
      return "rdma_no_device";
    case SWRDMA_E_TRANSPORT:
      return "rdma_transport";
    case SWRDMA_E_REMOTE_ACCESS:
      return "rdma_remote_access";
    case SWRDMA_E_CANCELLED:
      return "cancelled";
    case SWRDMA_E_INTERNAL:
      return "internal";
    case SWRDMA_E_TOO_SMALL:
      return "too_small";
    default:
      return "unknown";
  }
}

void swrdma_client_options_init(swrdma_client_options_t* options) {
  if (options == nullptr) return;
  *options = swrdma_client_options_t{};  // struct_size 0 (open refuses it) if the below throws
  try {
    // The C++ defaults (client/client.h), so the two APIs cannot drift apart.
    const swrdma::client::ClientOptions d;
    options->agent_url = nullptr;   // NULL: d.agent_url
    options->transports = nullptr;  // NULL: UCX's choice
    options->timeout_ms = static_cast<uint32_t>(d.timeout.count());
    options->fallback = SWRDMA_FALLBACK_NONE;
    options->max_inflight = static_cast<uint32_t>(d.max_inflight);
    options->lookup_cache_entries = d.lookup_cache_entries;
    options->lookup_cache_ttl_ms = static_cast<uint32_t>(d.lookup_cache_ttl.count());
    options->reconnect_attempts = d.reconnect_attempts;
    options->hugepages = d.hugepages ? 1 : 0;
    const swrdma::client::ClusterClientOptions cd;
    options->master_url = nullptr;
    options->agent_port = cd.agent_port;
    options->agent_map = nullptr;
    options->read_tokens = cd.read_tokens ? 1 : 0;
    options->struct_size = sizeof(swrdma_client_options_t);
  } catch (...) {
    (void)Caught(nullptr);
  }
}

int swrdma_client_open(const swrdma_client_options_t* options, swrdma_client_t** out) {
  try {
    g_open_error.clear();
    if (out == nullptr) return Fail(g_open_error, SWRDMA_E_INVALID_ARGUMENT, "out is NULL");
    *out = nullptr;
    // Fields past the caller's struct_size keep their defaults: an older, shorter struct works.
    swrdma_client_options_t o;
    swrdma_client_options_init(&o);
    if (options != nullptr) {
      if (options->struct_size < offsetof(swrdma_client_options_t, transports)) {
        return Fail(g_open_error, SWRDMA_E_INVALID_ARGUMENT,
                    "options->struct_size is not set: fill options with "
                    "swrdma_client_options_init first");
      }
      std::memcpy(&o, options, std::min(options->struct_size, sizeof(o)));
    }
    if (o.timeout_ms == 0 || o.max_inflight == 0 || o.lookup_cache_entries == 0 ||
        o.reconnect_attempts < 0 ||
        (o.fallback != SWRDMA_FALLBACK_NONE && o.fallback != SWRDMA_FALLBACK_HTTP)) {
      return Fail(g_open_error, SWRDMA_E_INVALID_ARGUMENT,
                  fmt::format("options out of range: timeout_ms {}, max_inflight {}, "
                              "lookup_cache_entries {}, reconnect_attempts {}, fallback {}",
                              o.timeout_ms, o.max_inflight, o.lookup_cache_entries,
                              o.reconnect_attempts, o.fallback));
    }
    swrdma::client::ClientOptions co;
    if (o.agent_url != nullptr) co.agent_url = o.agent_url;
    if (o.transports != nullptr) co.transports = o.transports;
    co.timeout = std::chrono::milliseconds(o.timeout_ms);
    co.fallback = o.fallback == SWRDMA_FALLBACK_HTTP ? swrdma::client::FallbackMode::kHttp
                                                     : swrdma::client::FallbackMode::kNone;
    co.max_inflight = o.max_inflight;
    co.lookup_cache_entries = o.lookup_cache_entries;
    co.lookup_cache_ttl = std::chrono::milliseconds(o.lookup_cache_ttl_ms);
    co.reconnect_attempts = o.reconnect_attempts;
    co.hugepages = o.hugepages != 0;
    auto handle = std::make_unique<swrdma_client>();
    if (o.master_url != nullptr && *o.master_url != '\0') {
      if (o.agent_port == 0 || o.agent_port > 65535) {
        return Fail(g_open_error, SWRDMA_E_INVALID_ARGUMENT,
                    fmt::format("agent_port {} is not a port", o.agent_port));
      }
      swrdma::client::ClusterClientOptions cc;
      cc.master.master_url = o.master_url;
      cc.master.timeout = co.timeout;
      cc.agent_port = static_cast<uint16_t>(o.agent_port);
      if (o.agent_map != nullptr) cc.agent_map = o.agent_map;
      cc.client = co;
      cc.read_tokens = o.read_tokens != 0;
      auto cluster = swrdma::client::ClusterClient::Create(cc);
      if (!cluster) return Fail(g_open_error, cluster.error());
      handle->cluster = std::move(*cluster);
    } else {
      auto client = swrdma::client::Client::Connect(co);
      if (!client) return Fail(g_open_error, client.error());
      handle->client = std::move(*client);
    }
    *out = handle.release();
    return SWRDMA_OK;
  } catch (...) {
    return Caught(&g_open_error);
  }
}

void swrdma_client_close(swrdma_client_t* client) {
  delete client;  // destructors do not throw
}

int swrdma_read(swrdma_client_t* client, const char* fid, const char* jwt, uint32_t flags,
                void* buf, size_t cap, size_t* len_out) {
  if (client == nullptr) return SWRDMA_E_INVALID_ARGUMENT;
  try {
    client->last_error.clear();
    if (fid == nullptr || len_out == nullptr || (buf == nullptr && cap != 0)) {
      return Fail(client->last_error, SWRDMA_E_INVALID_ARGUMENT,
                  "fid and len_out must not be NULL, nor buf when cap > 0");
    }
    const bool raw = (flags & SWRDMA_READ_RAW) != 0;
    swrdma::client::ReadOptions& ro = client->read_options;
    ro.decompress = !raw;
    ro.jwt.assign(jwt != nullptr ? jwt : "");
    ro.jwts.clear();
    if (client->cluster) {  // through the master: the batch path, with one fid
      int status = SWRDMA_E_INTERNAL;
      return swrdma_read_many(client, 1, &fid, &jwt, flags, &buf, &cap, len_out, &status);
    }
    auto view = client->client->ReadView(fid, ro);
    return Outcome(std::move(view), fid, raw, buf, cap, len_out, &client->last_error);
  } catch (...) {
    return Caught(&client->last_error);
  }
}

int swrdma_read_many(swrdma_client_t* client, size_t n, const char* const* fids,
                     const char* const* jwts, uint32_t flags, void* const* bufs, const size_t* caps,
                     size_t* lens_out, int* statuses_out) {
  if (client == nullptr) return SWRDMA_E_INVALID_ARGUMENT;
  try {
    client->last_error.clear();
    if (n == 0) return SWRDMA_OK;
    if (fids == nullptr || bufs == nullptr || caps == nullptr || lens_out == nullptr ||
        statuses_out == nullptr) {
      return Fail(client->last_error, SWRDMA_E_INVALID_ARGUMENT,
                  "fids, bufs, caps, lens_out and statuses_out must not be NULL");
    }
    for (size_t i = 0; i < n; ++i) {
      lens_out[i] = 0;
      statuses_out[i] = SWRDMA_E_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < n; ++i) {
      if (fids[i] == nullptr || (bufs[i] == nullptr && caps[i] != 0)) {
        return Fail(
            client->last_error, SWRDMA_E_INVALID_ARGUMENT,
            fmt::format("entry {}: fids[i] must not be NULL, nor bufs[i] when caps[i] > 0", i));
      }
    }
    // Each view is copied out as soon as it is verified (ReadEach), so its registered buffer
    // goes straight back to the pool, however many fids there are.
    struct Ctx {
      void* const* bufs;
      const size_t* caps;
      size_t* lens_out;
      int* statuses_out;
      const char* const* fids;
      size_t first_failed;
      std::string first_message;
    } ctx{bufs, caps, lens_out, statuses_out, fids, n, {}};
    OnData on_data = [](void* p, size_t i, int status, std::span<const uint8_t> data,
                        const std::string& message) {
      auto& c = *static_cast<Ctx*>(p);
      std::string copy_message;
      if (status == SWRDMA_OK) {
        status = CopyOut(data, c.fids[i], c.bufs[i], c.caps[i], &c.lens_out[i], &copy_message);
      }
      c.statuses_out[i] = status;
      if (status != SWRDMA_OK && i < c.first_failed) {
        c.first_failed = i;
        c.first_message = status == SWRDMA_E_TOO_SMALL ? std::move(copy_message) : message;
      }
    };
    ReadEachAny(client, n, fids, jwts, (flags & SWRDMA_READ_RAW) != 0, on_data, &ctx);
    const size_t first_failed = ctx.first_failed;
    std::string& first_message = ctx.first_message;
    if (first_failed == n) return SWRDMA_OK;
    client->last_error = std::move(first_message);
    return statuses_out[first_failed];
  } catch (...) {
    return Caught(&client->last_error);
  }
}

int swrdma_client_transports(swrdma_client_t* client, char* buf, size_t cap, size_t* len_out) {
  if (client == nullptr) return SWRDMA_E_INVALID_ARGUMENT;
  try {
    client->last_error.clear();
    if (len_out == nullptr || (buf == nullptr && cap != 0)) {
      return Fail(client->last_error, SWRDMA_E_INVALID_ARGUMENT,
                  "len_out must not be NULL, nor buf when cap > 0");
    }
    *len_out = 0;
    if (client->cluster) {  // one Client per agent: no single answer
      if (cap == 0) return Fail(client->last_error, SWRDMA_E_TOO_SMALL, "needs 1 byte");
      *buf = '\0';
      return SWRDMA_OK;
    }
    auto names = client->client->Transports();
    if (!names) return Fail(client->last_error, names.error());
    const std::string joined = fmt::format("{}", fmt::join(*names, ","));
    *len_out = joined.size();
    if (cap < joined.size() + 1) {
      return Fail(client->last_error, SWRDMA_E_TOO_SMALL,
                  fmt::format("needs {} bytes with the NUL, got {}", joined.size() + 1, cap));
    }
    std::memcpy(buf, joined.c_str(), joined.size() + 1);
    return SWRDMA_OK;
  } catch (...) {
    return Caught(&client->last_error);
  }
}

int swrdma_client_stats(swrdma_client_t* client, swrdma_stats_t* out) {
  if (client == nullptr) return SWRDMA_E_INVALID_ARGUMENT;
  try {
    client->last_error.clear();
    if (out == nullptr || out->struct_size < offsetof(swrdma_stats_t, reads)) {
      return Fail(client->last_error, SWRDMA_E_INVALID_ARGUMENT,
                  "out is NULL or out->struct_size is not set");
    }
    swrdma_stats_t all{};
    all.struct_size = out->struct_size;
    if (client->cluster) {  // the Clients per agent are the ClusterClient's own
      all.reads = client->cluster->stats().reads;
      std::memcpy(out, &all, std::min(out->struct_size, sizeof(all)));
      return SWRDMA_OK;
    }
    const swrdma::client::ClientStats& s = client->client->stats();
    const swrdma::client::BufferPoolStats p = client->client->buffer_pool_stats();
    all.reads = s.reads;
    all.bytes = s.bytes;
    all.lookups = s.lookups;
    all.lookup_cache_hits = s.lookup_cache_hits;
    all.retries = s.retries;
    all.crc_failures = s.crc_failures;
    all.http_fallbacks = s.http_fallbacks;
    all.reconnects = s.reconnects;
    all.reg_cache_hits = s.reg_cache_hits;
    all.reg_cache_misses = s.reg_cache_misses;
    all.registered_bytes = p.registered_bytes;
    all.buffers_out = p.buffers_out;
    // Only the fields the caller's struct has: a program built against a shorter one works.
    std::memcpy(out, &all, std::min(out->struct_size, sizeof(all)));
    return SWRDMA_OK;
  } catch (...) {
    return Caught(&client->last_error);
  }
}

const char* swrdma_last_error(const swrdma_client_t* client) {
  return client != nullptr ? client->last_error.c_str() : g_open_error.c_str();
}

}  // extern "C"
