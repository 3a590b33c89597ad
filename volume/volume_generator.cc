#include "volume/volume_generator.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "protocol/gzip.h"
#include "volume/volume_writer.h"

namespace swrdma {

namespace {

// SplitMix64: tiny, fast, and good enough to make data look random to gzip and to pick sizes.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) (n > 0); the modulo bias is irrelevant for test data.
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

// Independent per-needle streams: what a needle looks like depends only on (seed, id, purpose),
// not on the order needles are generated in.
enum class Stream : uint64_t { kData = 1, kShape = 2 };
uint64_t NeedleHash(uint64_t seed, uint64_t needle_id, Stream s) {
  return Mix(Mix(seed ^ (static_cast<uint64_t>(s) << 56)) ^ Mix(needle_id));
}

// A uniform double in [0, 1) from 53 bits of `h`.
double Unit(uint64_t h) {
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

// Words for compressible data: gzip shrinks this kind of text ~3-4x, like logs or JSON.
constexpr std::array<std::string_view, 32> kWords = {
    "the",     "volume",   "needle",    "server", "replica", "offset",  "index",  "cookie",
    "seaweed", "fs",       "data",      "file",   "read",    "write",   "remote", "memory",
    "status",  "ok",       "error",     "retry",  "latency", "bytes",   "0",      "1",
    "42",      "{\"id\":", "\"size\":", "},",     "time",    "request", "chunk",  "rdma"};

void FillText(Rng& rng, uint8_t* out, size_t size) {
  size_t i = 0;
  uint64_t bits = 0;
  int left = 0;
  while (i < size) {
    if (left < 8) {
      bits = rng.Next();
      left = 64;
    }
    const std::string_view w = kWords[bits & 31];
    const bool newline = ((bits >> 5) & 7) == 0;
    bits >>= 8;
    left -= 8;
    const size_t n = std::min(w.size(), size - i);
    std::memcpy(out + i, w.data(), n);
    i += n;
    if (i < size) out[i++] = newline ? '\n' : ' ';
  }
}

void FillRandom(Rng& rng, uint8_t* out, size_t size) {
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const uint64_t v = rng.Next();
    std::memcpy(out + i, &v, 8);
  }
  if (i < size) {
    const uint64_t v = rng.Next();
    std::memcpy(out + i, &v, size - i);
  }
}

Status ValidateOptions(const GenerateOptions& o) {
  auto bad = [](std::string msg) { return Status(Code::kInvalidArgument, std::move(msg)); };
  if (o.version != NeedleVersion::kV2 && o.version != NeedleVersion::kV3) {
    return bad("generated volumes are version 2 or 3 (version 1 has no flags for gzip, names)");
  }
  if (o.min_size == 0) {
    return bad("needle size must be at least 1 byte: empty data reads back as a deletion");
  }
  if (o.min_size > o.max_size) {
    return bad(fmt::format("min size {} is larger than max size {}", o.min_size, o.max_size));
  }
  if (o.max_size > (uint64_t{1} << 31)) {
    return bad(fmt::format("max size {} exceeds 2 GiB per needle", o.max_size));
  }
  if (!(o.gzip_fraction >= 0 && o.gzip_fraction <= 1) ||
      !(o.delete_fraction >= 0 && o.delete_fraction <= 1)) {
    return bad("gzip and delete fractions must lie in [0, 1]");
  }
  if (o.first_needle_id == 0 || o.first_needle_id + o.needles < o.first_needle_id) {
    return bad("needle ids must be >= 1 and not wrap around");
  }
  return Status::Ok();
}

}  // namespace

std::vector<uint8_t> GeneratedNeedleData(uint64_t seed, uint64_t needle_id, size_t size,
                                         bool compressible) {
  std::vector<uint8_t> out(size);
  Rng rng(NeedleHash(seed, needle_id, Stream::kData));
  if (compressible) {
    FillText(rng, out.data(), size);
  } else {
    FillRandom(rng, out.data(), size);
  }
  return out;
}

Result<GenerateReport> GenerateVolume(
    const GenerateOptions& opts, const std::function<void(const GenerateProgress&)>& progress) {
  SWRDMA_RETURN_IF_ERROR(ValidateOptions(opts));
  VolumeWriterOptions wo;
  wo.dir = opts.dir;
  wo.volume_id = opts.volume_id;
  wo.collection = opts.collection;
  wo.version = opts.version;
  wo.offset_width = opts.offset_width;
  wo.replica_placement = opts.replica_placement;
  SWRDMA_ASSIGN_OR_RETURN(VolumeWriter writer, VolumeWriter::Create(wo));

  GenerateReport report;
  report.dat = writer.files().dat;
  report.idx = writer.files().idx;
  if (opts.record_needles) report.needles.reserve(opts.needles);
  GenerateProgress prog;
  prog.total = opts.needles;

  struct ToDelete {
    uint64_t id;
    uint32_t cookie;
    size_t index;  // into report.needles when recorded
  };
  std::vector<ToDelete> to_delete;

  for (uint64_t i = 0; i < opts.needles; ++i) {
    const uint64_t id = opts.first_needle_id + i;
    Rng shape(NeedleHash(opts.seed, id, Stream::kShape));
    const uint64_t size = opts.min_size + shape.Below(opts.max_size - opts.min_size + 1);
    const uint32_t cookie = static_cast<uint32_t>(shape.Next());
    const bool gzipped = Unit(shape.Next()) < opts.gzip_fraction;
    const bool deleted = Unit(shape.Next()) < opts.delete_fraction;
    const uint64_t meta = shape.Next();

    const std::vector<uint8_t> data = GeneratedNeedleData(opts.seed, id, size, gzipped);
    std::vector<uint8_t> compressed;
    NeedleSpec spec;
    spec.id = id;
    spec.cookie = cookie;
    spec.legacy_crc = opts.legacy_crc;
    if (gzipped) {
      // Level 1: SeaweedFS's util.GzipStream compresses with gzip.BestSpeed.
      SWRDMA_ASSIGN_OR_RETURN(compressed, Gzip(data, /*level=*/1));
      spec.data = compressed;
      spec.gzipped = true;
    } else {
      spec.data = data;
    }
    // Uploads through the filer carry name, mime and last-modified (flags 0x0e); gzipped ones
    // always do, as in the ec_1 fixture (flags 0x0f). Others: a third of them.
    if (gzipped || meta % 3 == 0) {
      spec.name = fmt::format("file-{:x}.{}", id, gzipped ? "txt" : "bin");
      spec.mime = gzipped ? "text/plain" : "application/octet-stream";
      spec.last_modified = 1'700'000'000 + (meta >> 40);
    }
    SWRDMA_ASSIGN_OR_RETURN(IdxEntry entry, writer.Append(spec));

    ++report.written;
    report.gzipped += gzipped;
    report.data_bytes += size;
    report.stored_bytes += spec.data.size();
    if (opts.record_needles) {
      report.needles.push_back(GeneratedNeedle{FileId{opts.volume_id, id, cookie}, size,
                                               spec.data.size(), entry.offset, gzipped, false});
    }
    if (deleted)
      to_delete.push_back({id, cookie, opts.record_needles ? report.needles.size() - 1 : 0});
    prog.written = report.written;
    prog.dat_size = writer.dat_size();
    if (progress) progress(prog);
  }

  // Deletions come later and in no particular order, as on a volume in use.
  Rng order(Mix(opts.seed ^ 0xde1e7eull));
  for (size_t i = to_delete.size(); i > 1; --i) {
    std::swap(to_delete[i - 1], to_delete[order.Below(i)]);
  }
  for (const ToDelete& d : to_delete) {
    SWRDMA_RETURN_IF_ERROR(writer.Delete(d.id, d.cookie));
    ++report.deleted;
    if (opts.record_needles) report.needles[d.index].deleted = true;
    prog.deleted = report.deleted;
    prog.dat_size = writer.dat_size();
    if (progress) progress(prog);
  }
  SWRDMA_RETURN_IF_ERROR(writer.Sync());
  report.dat_size = writer.dat_size();
  report.idx_size = writer.idx_size();
  return report;
}

}  // namespace swrdma
