// The reader side of swrdma-volume-chaos: reads random fids of the manifest through the client
// library while the volumes change, and counts what happened. A read either returns the bytes
// the manifest promises (size and CRC-32C of the decompressed data) or fails with an error code;
// anything else is a wrong read, which must never happen.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace swrdma::chaos {

struct ReaderOptions {
  std::string agent_url;
  std::string manifest;
  std::optional<std::string> transports;  // UCX_TLS of the client
  std::chrono::milliseconds duration{10'000};
  std::chrono::milliseconds timeout{2'000};  // client timeout per request / batch
  // A deleted needle (or one of a removed volume) may still be read this long after the
  // manifest says it is gone (the client's lookup cache TTL is 1 s, plus the agent's lag).
  std::chrono::milliseconds delete_grace{2'000};
  size_t max_batch = 8;        // fids per ReadMany, drawn in 1..max_batch
  double gone_fraction = 0.1;  // share of reads aimed at deleted / cut / removed fids
  double max_reads_per_second = 400;
  uint64_t seed = 1;
  std::string name = "reader";
};

struct ReaderCounts {
  uint64_t reads = 0;
  uint64_t ok = 0;                         // right bytes
  uint64_t ok_gone_within_grace = 0;       // of which: a gone needle, read within the grace
  uint64_t stale_after_delete = 0;         // of which: a gone needle, read later than the grace
  uint64_t wrong_bytes = 0;                // a read that returned other bytes than promised
  std::map<std::string, uint64_t> failed;  // by code: failures of live needles
  std::map<std::string, uint64_t> failed_gone;  // by code: failures of gone / cut needles
  uint64_t connect_failures = 0;                // Client::Connect attempts that failed
  // Client statistics, summed over the clients this reader had.
  uint64_t retries = 0;
  uint64_t reconnects = 0;
  uint64_t lookups = 0;
  uint64_t crc_failures = 0;
  uint64_t http_fallbacks = 0;  // reads the client sent over HTTP (it should not: fallback none)
  double seconds = 0;
};

// Runs until `duration` has passed or `*stop` is set (from a signal handler; polled between
// batches). Never fails as a whole: problems are counted.
ReaderCounts RunReader(const ReaderOptions& options, const volatile std::sig_atomic_t* stop);

// One JSON object on one line.
std::string ToJson(const ReaderOptions& options, const ReaderCounts& counts);

// A final pass once the volumes are quiet: every fid of the manifest read once, in batches.
struct VerifyCounts {
  uint64_t live_ok = 0;
  std::map<std::string, uint64_t> live_failed;  // by code: must be empty
  uint64_t gone_ok = 0;                         // deleted / removed yet readable: must be 0
  std::map<std::string, uint64_t> gone_failed;  // by code
  uint64_t cut_ok = 0;                          // truncated away: either is fine
  uint64_t cut_failed = 0;
  uint64_t wrong_bytes = 0;  // must be 0
  bool connected = false;
  bool passed() const {
    return connected && live_failed.empty() && gone_ok == 0 && wrong_bytes == 0;
  }
};
VerifyCounts RunVerify(const ReaderOptions& options);
std::string ToJson(const VerifyCounts& counts);

}  // namespace swrdma::chaos
