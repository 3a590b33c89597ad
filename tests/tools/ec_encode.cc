// swrdma-ec-encode: a test tool (not installed) that erasure-codes a SeaweedFS volume with our own
// encoder, ec::EncodeEcVolume (volume/ec_volume.h), so tests can compare its output with what
// `weed shell ec.encode` leaves on a volume server (tests/seaweedfs/seaweedfs_test.sh).
//
//   swrdma-ec-encode [--encode-ts-ns N] DAT IDX OUTDIR BASE
//
// writes OUTDIR/BASE.ec00 .. BASE.ec13 (10 data + 4 parity shards), BASE.ecx, an empty BASE.ecj
// and BASE.vif. --encode-ts-ns sets the .vif's ecShardConfig.encodeTsNs (weed writes the encode
// time there; default 0). OUTDIR is created when missing.
//
// Exit status: 0 encoded, 1 the encode failed (the message says why; no partial shard set is
// left behind), 2 bad arguments.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "volume/ec_volume.h"

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kUsage =
    "usage: swrdma-ec-encode [--encode-ts-ns N] DAT IDX OUTDIR BASE\n"
    "  erasure-codes the volume DAT (with its index IDX) as `weed shell ec.encode` does: writes\n"
    "  OUTDIR/BASE.ec00..ec13, BASE.ecx, BASE.ecj and BASE.vif\n";

int Usage(std::string_view error) {
  if (!error.empty()) fmt::print(stderr, "swrdma-ec-encode: {}\n", error);
  fmt::print(stderr, "{}", kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  swrdma::ec::EcEncodeOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      fmt::print("{}", kUsage);
      return 0;
    }
    if (arg == "--encode-ts-ns") {
      if (i + 1 >= argc) return Usage("--encode-ts-ns needs a value");
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(argv[++i], &end, 10);
      if (errno != 0 || end == argv[i] || *end != '\0' || v < 0)
        return Usage(fmt::format("--encode-ts-ns: not a non-negative integer: '{}'", argv[i]));
      options.encode_ts_ns = v;
      continue;
    }
    if (arg.size() > 1 && arg[0] == '-') return Usage(fmt::format("unknown option '{}'", arg));
    positional.emplace_back(arg);
  }
  if (positional.size() != 4)
    return Usage(
        fmt::format("expected 4 arguments (DAT IDX OUTDIR BASE), got {}", positional.size()));
  const fs::path dat = positional[0], idx = positional[1], out_dir = positional[2];
  const std::string& base = positional[3];
  if (base.empty() || base.find('/') != std::string::npos)
    return Usage(
        fmt::format("BASE must be a file name without '/' (like 3 or coll_3), got '{}'", base));
  for (const fs::path& p : {dat, idx}) {
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) {
      fmt::print(stderr, "swrdma-ec-encode: {} is not a readable regular file{}\n", p.string(),
                 ec ? ": " + ec.message() : "");
      return 1;
    }
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) {
    fmt::print(stderr, "swrdma-ec-encode: cannot create {}: {}\n", out_dir.string(), ec.message());
    return 1;
  }
  const swrdma::Status st = swrdma::ec::EncodeEcVolume(dat, idx, out_dir, base, options);
  if (!st.ok()) {
    fmt::print(stderr, "swrdma-ec-encode: {}\n", st.ToString());
    return 1;
  }
  fmt::print("encoded {} into {}/{}.ec00..ec{:02}, .ecx, .ecj, .vif\n", dat.string(),
             out_dir.string(), base, options.data_shards + options.parity_shards - 1);
  return 0;
}
