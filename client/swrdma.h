/* swrdma C API: verified one-sided reads of SeaweedFS needles from an swrdma-agent.
 *
 * The base for bindings (Python, Go): plain C, opaque handles, int status codes with message
 * strings, caller-owned buffers. Built into libswrdma.so, which exports only swrdma_* symbols.
 *
 *   swrdma_client_options_t o;
 *   swrdma_client_options_init(&o);
 *   o.agent_url = "http://volume-host:18515";
 *   swrdma_client_t* c;
 *   if (swrdma_client_open(&o, &c) != SWRDMA_OK) puts(swrdma_last_error(NULL));
 *   size_t len;
 *   int rc = swrdma_read(c, "3,01637037d6", NULL, 0, buf, sizeof buf, &len);
 *   if (rc == SWRDMA_E_TOO_SMALL) ... grow buf to len bytes, read again ...
 *   swrdma_client_close(c);
 *
 * Every byte handed out was verified first (header id, cookie, size, CRC-32C), as with the C++
 * Client (client/client.h), which this wraps. No C++ exception crosses this boundary.
 *
 * Threads: a client is used by one thread at a time (one client per thread); different clients
 * are independent. swrdma_last_error(client) is that client's; swrdma_last_error(NULL) is the
 * calling thread's last swrdma_client_open failure. */
#ifndef SWRDMA_H_
#define SWRDMA_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes: 0 is success, errors are negative. The values are stable: a code keeps its
 * number, new codes get new numbers. One per error code of the library (protocol/status.h). */
enum {
  SWRDMA_OK = 0,
  SWRDMA_E_INVALID_ARGUMENT = -1,    /* malformed fid, bad option, null pointer */
  SWRDMA_E_NOT_FOUND = -2,           /* no such needle */
  SWRDMA_E_DELETED = -3,             /* the needle existed and was deleted */
  SWRDMA_E_UNKNOWN_VOLUME = -4,      /* the agent exports no such volume */
  SWRDMA_E_STALE = -5,               /* the volume changed under the read (after the retry) */
  SWRDMA_E_CORRUPTION = -6,          /* the record does not parse or does not match the fid */
  SWRDMA_E_CRC = -7,                 /* CRC-32C mismatch: the data is damaged (data loss) */
  SWRDMA_E_IO = -8,                  /* a system call on a file failed */
  SWRDMA_E_TIMEOUT = -9,             /* no answer within the client's timeout */
  SWRDMA_E_UNAVAILABLE = -10,        /* agent unreachable or not ready; not connected over UCX */
  SWRDMA_E_AUTH = -11,               /* read token (JWT) missing or wrong: the agent said 401 */
  SWRDMA_E_RESOURCE_EXHAUSTED = -12, /* memory, registered buffers, size limits */
  SWRDMA_E_UNSUPPORTED = -13,        /* valid but not possible here (e.g. multi-region volume) */
  SWRDMA_E_NO_DEVICE = -14,          /* no usable RDMA device or UCX transport */
  SWRDMA_E_TRANSPORT = -15,          /* UCX transport or endpoint failure */
  SWRDMA_E_REMOTE_ACCESS = -16,      /* the agent's memory key or address was rejected */
  SWRDMA_E_CANCELLED = -17,          /* gets cancelled: their connection was torn down */
  SWRDMA_E_INTERNAL = -18,           /* a bug (an invariant did not hold, or an exception) */
  SWRDMA_E_TOO_SMALL = -19           /* the buffer is too small; *len_out says how many bytes */
};

/* Read flags. */
#define SWRDMA_READ_RAW 0x1u /* data as stored: gzip needles are not decompressed */

/* Fallback modes (swrdma_client_options_t.fallback). */
#define SWRDMA_FALLBACK_NONE 0 /* RDMA or an error */
#define SWRDMA_FALLBACK_HTTP 1 /* read over the agent's HTTP GET when UCX cannot connect */

/* Options of swrdma_client_open. Fill with swrdma_client_options_init (defaults, struct_size),
 * then set what differs: the library reads only the first struct_size bytes, so a program built
 * against an older, shorter struct keeps working when fields are added at the end. */
typedef struct swrdma_client_options {
  size_t struct_size;            /* sizeof(swrdma_client_options_t) */
  const char* agent_url;         /* "http://host:18515", "host:port"; NULL: 127.0.0.1:18515 */
  const char* transports;        /* UCX_TLS of the client ("tcp", "posix,sysv,cma"); NULL: UCX's */
  uint32_t timeout_ms;           /* per HTTP request and per batch of gets; default 5000 */
  int fallback;                  /* SWRDMA_FALLBACK_*; default NONE */
  uint32_t max_inflight;         /* gets posted at once; default 64 */
  uint64_t lookup_cache_entries; /* default 100000 */
  uint32_t lookup_cache_ttl_ms;  /* how long a lookup is reused; default 1000 */
  int32_t reconnect_attempts;    /* after a broken connection; default 6 */
  int hugepages;                 /* nonzero: 2 MiB pages for the registered buffers */
  /* Through a SeaweedFS master: it says where each volume's replicas are, each replica's agent
   * is read (agent_url is then unused) and a failed replica fails over to the next. */
  const char* master_url; /* "http://master:9333[,...]"; NULL or "": agent_url only */
  uint32_t agent_port;    /* with master_url: the agents' port on each volume host; 18515 */
  const char* agent_map;  /* with master_url: file of "VOLUME_HOST:PORT AGENT_URL" lines */
  int read_tokens;        /* with master_url: nonzero asks the master for each fid's token */
} swrdma_client_options_t;

/* Counters of one client (swrdma_client_stats). */
typedef struct swrdma_stats {
  size_t struct_size; /* set by the caller: sizeof(swrdma_stats_t) */
  uint64_t reads;     /* successful one-sided reads */
  uint64_t bytes;     /* their data bytes (as stored) */
  uint64_t lookups;   /* lookup requests to the agent */
  uint64_t lookup_cache_hits;
  uint64_t retries; /* reads repeated after a failed check or a stale generation */
  uint64_t crc_failures;
  uint64_t http_fallbacks;
  uint64_t reconnects;
  uint64_t reg_cache_hits;   /* reads into an idle registered buffer */
  uint64_t reg_cache_misses; /* reads that had to register a new chunk */
  uint64_t registered_bytes; /* registered buffer memory now */
  uint64_t buffers_out;      /* registered buffers held now */
} swrdma_stats_t;

typedef struct swrdma_client swrdma_client_t;

/* "0.1.0": the library's version. */
const char* swrdma_version(void);

/* Stable lower-case name of a status code: "ok", "not_found", "deleted", "checksum_mismatch",
 * "too_small", ...; "unknown" for a number that is not a code. A static string. */
const char* swrdma_strerror(int status);

/* Fills *options with the defaults and sets struct_size. */
void swrdma_client_options_init(swrdma_client_options_t* options);

/* Connects to the agent (GET /v1/info, UCX endpoint). options may be NULL (all defaults). On
 * failure *out is NULL and swrdma_last_error(NULL) says why. */
int swrdma_client_open(const swrdma_client_options_t* options, swrdma_client_t** out);

/* Closes the connection and frees the client. NULL is ignored. */
void swrdma_client_close(swrdma_client_t* client);

/* Reads one needle's data into buf (cap bytes). jwt: the fid's read token, NULL or "" without.
 * flags: SWRDMA_READ_*. On SWRDMA_OK *len_out is the data's length. SWRDMA_E_TOO_SMALL: buf is
 * not written and *len_out is the length needed (read again with a larger buffer; the read is
 * cheap, it is one-sided). buf may be NULL when cap is 0 (asks for the length). Other errors:
 * *len_out is 0 and swrdma_last_error says why, naming the fid. */
int swrdma_read(swrdma_client_t* client, const char* fid, const char* jwt, uint32_t flags,
                void* buf, size_t cap, size_t* len_out);

/* Reads n needles in one batch: one lookup, up to max_inflight gets in flight. For each i,
 * fids[i] goes into bufs[i] (caps[i] bytes); lens_out[i] and statuses_out[i] are as *len_out and
 * the status of swrdma_read. jwts may be NULL (no tokens) or hold n entries (each may be NULL).
 * Returns SWRDMA_OK when every read succeeded, else the status of the first one that failed
 * (swrdma_last_error names it), or an error of the call itself (nothing read, statuses set). */
int swrdma_read_many(swrdma_client_t* client, size_t n, const char* const* fids,
                     const char* const* jwts, uint32_t flags, void* const* bufs, const size_t* caps,
                     size_t* lens_out, int* statuses_out);

/* One read's outcome for swrdma_read_each: index into the fids, the status (as swrdma_read's),
 * and on SWRDMA_OK the verified data (gunzipped unless SWRDMA_READ_RAW): len bytes at data,
 * valid only during the call (it is the registered buffer the record landed in, or the gunzip
 * output). On an error data is NULL, len 0 and message (also valid only during the call) says
 * why, naming the fid. The callback must not call into the same client. */
typedef void (*swrdma_read_fn)(void* ctx, size_t index, int status, const void* data, size_t len,
                               const char* message);

/* Reads n needles as swrdma_read_many does, handing each one to on_read(ctx, ...) as soon as it
 * is verified (completion order, every index exactly once): no buffer sizes to know in advance,
 * and no copy beyond the one the callback makes. Returns SWRDMA_OK when every read succeeded,
 * else the status of the lowest index that failed (swrdma_last_error names it), or an error of
 * the call itself (then on_read is not called). */
int swrdma_read_each(swrdma_client_t* client, size_t n, const char* const* fids,
                     const char* const* jwts, uint32_t flags, swrdma_read_fn on_read, void* ctx);

/* The agent and the client as JSON, NUL-terminated into buf: {"library_version", "agent_version",
 * "agent_transports": [...], "transports": [...] (the client's), "exposure",
 * "volume_count", "volumes": [{"id", "collection", "version", "size", "live_needles",
 * "deleted_needles", "generation"}]} (asks the agent for its volumes); through a master:
 * {"library_version", "master_url", "reads", "failovers", "connects", "connect_failures"}.
 * *len_out and SWRDMA_E_TOO_SMALL as swrdma_client_transports. */
int swrdma_client_info(swrdma_client_t* client, char* buf, size_t cap, size_t* len_out);

/* The UCX transports the client reads over, comma-separated ("tcp", "posix,sysv"; "" over the
 * HTTP fallback and through a master), NUL-terminated into buf. *len_out: the length without
 * the NUL; SWRDMA_E_TOO_SMALL when cap < *len_out + 1. */
int swrdma_client_transports(swrdma_client_t* client, char* buf, size_t cap, size_t* len_out);

/* Copies the client's counters into *out; out->struct_size must be set (fields past it are not
 * written). */
int swrdma_client_stats(swrdma_client_t* client, swrdma_stats_t* out);

/* The error message of the client's last call ("3,01637037d6: ..."), "" when it succeeded. Valid
 * until the next call on the client. NULL: the calling thread's last swrdma_client_open error. */
const char* swrdma_last_error(const swrdma_client_t* client);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SWRDMA_H_ */
