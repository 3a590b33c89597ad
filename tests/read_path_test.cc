// The whole read path in one process: generated and real SeaweedFS volumes -> agent (index, mapped
// + registered .dat, progress thread, HTTP API) -> client (lookup, rkey, one-sided get, verify).
// No mock anywhere: UCX over tcp loopback and over same-host shared memory.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>

#include <gtest/gtest.h>

#include "agent/agent_service.h"
#include "agent/progress_thread.h"
#include "agent/volume_set.h"
#include "client/client.h"
#include "http/http_server.h"
#include "index/needle_index.h"
#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "protocol/needle.h"
#include "rdma/ucx/ucx_context.h"
#include "rdma/ucx/ucx_worker.h"
#include "tests/generated_volume.h"
#include "tests/in_process_agent.h"
#include "tests/test_util.h"
#include "volume/idx_file.h"
#include "volume/superblock.h"
#include "volume/volume_files.h"
#include "volume/volume_generator.h"
#include "volume/volume_writer.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;

using Expected = testing::ExpectedNeedle;

GenerateReport Generate(const fs::path& dir, uint32_t vid, NeedleVersion v, uint64_t n,
                        uint64_t min, uint64_t max, bool legacy, uint64_t seed,
                        std::map<std::string, Expected>& expected) {
  GenerateOptions o;
  o.dir = dir;
  o.volume_id = vid;
  o.needles = n;
  o.min_size = min;
  o.max_size = max;
  o.version = v;
  o.gzip_fraction = 0.3;
  o.delete_fraction = 0.1;
  o.legacy_crc = legacy;
  o.seed = seed;
  return testing::GenerateExpected(o, expected);
}

class ReadPathTest : public ::testing::TestWithParam<std::string> {
 protected:
  client::ClientOptions ClientFor(const testing::InProcessAgent& agent) {
    client::ClientOptions o;
    o.agent_url = agent.url();
    o.transports = GetParam();
    o.timeout = std::chrono::seconds(10);
    return o;
  }
};

TEST_P(ReadPathTest, EveryGeneratedNeedleReadsBackVerified) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  std::map<std::string, Expected> expected;
  Generate(tmp / "vols", 3, NeedleVersion::kV3, 400, 1, 64 * 1024, false, 11, expected);
  Generate(tmp / "vols", 4, NeedleVersion::kV2, 60, 1, 5 << 20, true, 12, expected);  // > 4 MiB
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  ASSERT_EQ(agent.report().exported, 2u) << agent.report().messages.size();

  auto c = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(c) << c.error().ToString();
  auto transports = (*c)->Transports();
  ASSERT_TRUE(transports);
  ASSERT_FALSE(transports->empty());
  if (GetParam() == "tcp") {
    EXPECT_EQ(*transports, std::vector<std::string>{"tcp"});
  } else {
    for (const auto& t : *transports)
      EXPECT_NE(t, "tcp") << "shared-memory client fell back";
  }

  std::vector<std::string> fids;
  for (const auto& [fid, e] : expected)
    fids.push_back(fid);
  auto results = (*c)->ReadMany(fids);
  ASSERT_EQ(results.size(), fids.size());
  size_t live = 0;
  for (size_t i = 0; i < fids.size(); ++i) {
    const Expected& e = expected[fids[i]];
    if (e.deleted) {
      ASSERT_FALSE(results[i]) << fids[i];
      EXPECT_EQ(results[i].error().code(), Code::kDeleted) << results[i].error().ToString();
      continue;
    }
    ASSERT_TRUE(results[i]) << fids[i] << ": " << results[i].error().ToString();
    EXPECT_EQ(results[i]->via, "rdma");
    EXPECT_EQ(results[i]->data, e.data) << fids[i];
    ++live;
  }
  EXPECT_GT(live, 400u);
  // Single reads, and a raw (still compressed) read of a gzip needle.
  for (size_t i = 0; i < 20; ++i) {
    const auto& e = expected[fids[i]];
    auto one = (*c)->Read(fids[i]);
    EXPECT_EQ(one.has_value(), !e.deleted) << fids[i];
    if (one) {
      EXPECT_EQ(one->data, e.data);
    }
    if (one && one->stored_gzipped) {
      auto raw = (*c)->Read(fids[i], {.decompress = false});
      ASSERT_TRUE(raw);
      EXPECT_EQ(*Gunzip(raw->data), e.data);
    }
  }
  // Checked reads: no lookup round trip at all (the agent resolves every fid it is asked for).
  EXPECT_EQ((*c)->stats().lookups, 0u);
  EXPECT_EQ((*c)->stats().crc_failures, 0u);
}

TEST_P(ReadPathTest, LookupFailuresAreTypedErrors) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  std::map<std::string, Expected> expected;
  Generate(tmp / "vols", 5, NeedleVersion::kV3, 20, 100, 200, false, 5, expected);
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  auto c = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(c) << c.error().ToString();
  const std::string live = std::find_if(expected.begin(), expected.end(), [](auto& kv) {
                             return !kv.second.deleted;
                           })->first;
  auto fid = *ParseFileId(live);
  struct Case {
    std::string fid;
    Code code;
  } cases[] = {
      {"5,zz", Code::kInvalidArgument},
      {"nonsense", Code::kInvalidArgument},
      {FormatFileId({99, fid.needle_id, fid.cookie}), Code::kUnknownVolume},
      {FormatFileId({5, 999999, fid.cookie}), Code::kNotFound},
      {FormatFileId({5, fid.needle_id, fid.cookie ^ 1}), Code::kNotFound},  // wrong cookie
  };
  for (const auto& cs : cases) {
    auto r = (*c)->Read(cs.fid);
    ASSERT_FALSE(r) << cs.fid;
    EXPECT_EQ(r.error().code(), cs.code) << cs.fid << ": " << r.error().ToString();
    EXPECT_NE(r.error().message().find(cs.fid), std::string::npos) << r.error().message();
  }
  EXPECT_TRUE((*c)->Read(live));
}

TEST_P(ReadPathTest, CorruptedDataFailsTheCrcAndOthersStillRead) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  std::map<std::string, Expected> expected;
  auto report = Generate(tmp / "vols", 6, NeedleVersion::kV3, 50, 1000, 4000, false, 6, expected);
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  auto c = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(c) << c.error().ToString();

  const GeneratedNeedle* victim = nullptr;
  for (const auto& n : report.needles) {
    if (!n.deleted && !n.gzipped) {
      victim = &n;
      break;
    }
  }
  ASSERT_NE(victim, nullptr);
  // Flip a data byte in the file on disk; the agent's shared mapping sees it at once.
  const int fd = ::open(report.dat.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const off_t at = static_cast<off_t>(victim->offset + kNeedleHeaderSize + 4 + 7);
  uint8_t b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, at), 1);
  b ^= 0x5a;
  ASSERT_EQ(::pwrite(fd, &b, 1, at), 1);
  ::close(fd);

  const std::string bad = FormatFileId(victim->fid);
  auto r = (*c)->Read(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kChecksumMismatch);
  EXPECT_NE(r.error().message().find("CRC"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find(bad), std::string::npos) << r.error().message();
  EXPECT_GE((*c)->stats().retries, 1u);
  for (const auto& [fid, e] : expected) {
    if (e.deleted || fid == bad) continue;
    auto ok = (*c)->Read(fid);
    ASSERT_TRUE(ok) << fid << ": " << ok.error().ToString();
    EXPECT_EQ(ok->data, e.data);
  }
}

TEST_P(ReadPathTest, RealSeaweedFsFixturesReadBack) {
  SWRDMA_REQUIRE_FIXTURES(fixtures);
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  // Served as volumes 1 (ec_1) and 7 (healthy_volume, whose id is not in its name).
  fs::create_symlink(fixtures / "ec_1.dat", tmp / "vols/1.dat");
  fs::create_symlink(fixtures / "ec_1.idx", tmp / "vols/1.idx");
  fs::create_symlink(fixtures / "healthy_volume.dat", tmp / "vols/7.dat");
  fs::create_symlink(fixtures / "healthy_volume.idx", tmp / "vols/7.idx");
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  ASSERT_EQ(agent.report().exported, 2u);
  auto c = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(c) << c.error().ToString();

  size_t live = 0, deleted = 0, legacy = 0;
  for (uint32_t vid : {1u, 7u}) {
    // Expected bytes decoded straight from the .dat, through the replayed .idx.
    const fs::path dat = tmp / "vols" / (std::to_string(vid) + ".dat");
    const fs::path idx = tmp / "vols" / (std::to_string(vid) + ".idx");
    auto mapping = rdma::MappedFile::Open(dat);
    ASSERT_TRUE(mapping);
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(mapping->data()),
                                   mapping->size());
    auto sb = ParseSuperBlock(bytes);
    ASSERT_TRUE(sb);
    std::map<uint64_t, IdxEntry> last;
    ASSERT_TRUE(
        ScanIdxFile(idx, OffsetWidth::k4, 0, [&](const IdxEntry& e) { last[e.needle_id] = e; }));
    std::vector<std::string> fids;
    std::vector<std::vector<uint8_t>> want;
    std::vector<bool> is_deleted;
    for (const auto& [id, e] : last) {
      if (e.is_deletion()) {
        // A deleted needle's cookie comes from its tombstone record.
        auto h = ParseNeedleHeader(bytes.subspan(e.offset));
        ASSERT_TRUE(h);
        fids.push_back(FormatFileId({vid, id, h->cookie}));
        want.emplace_back();
        is_deleted.push_back(true);
        continue;
      }
      auto rec = ParseNeedleRecord(bytes.subspan(e.offset), sb->version);
      ASSERT_TRUE(rec);
      fids.push_back(FormatFileId({vid, id, rec->header.cookie}));
      want.push_back(rec->is_gzipped() ? *Gunzip(rec->data)
                                       : std::vector<uint8_t>(rec->data.begin(), rec->data.end()));
      is_deleted.push_back(false);
    }
    auto results = (*c)->ReadMany(fids);
    for (size_t i = 0; i < fids.size(); ++i) {
      if (is_deleted[i]) {
        ASSERT_FALSE(results[i]) << fids[i];
        EXPECT_EQ(results[i].error().code(), Code::kDeleted);
        ++deleted;
        continue;
      }
      ASSERT_TRUE(results[i]) << fids[i] << ": " << results[i].error().ToString();
      EXPECT_EQ(results[i]->data, want[i]) << fids[i];
      if (results[i]->crc_form == CrcForm::kLegacy) ++legacy;
      ++live;
    }
  }
  EXPECT_EQ(live, 298u + 7u);
  EXPECT_EQ(deleted, 10u);
  EXPECT_EQ(legacy, 298u);  // every ec_1 checksum is the legacy Value() form
}

TEST_P(ReadPathTest, CopyExportModeServesTheSameBytes) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  std::map<std::string, Expected> expected;
  Generate(tmp / "vols", 8, NeedleVersion::kV3, 80, 1, 100000, false, 8, expected);
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index", agent::ExportMode::kCopy);
  ASSERT_EQ(agent.report().exported, 1u);
  auto c = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(c) << c.error().ToString();
  std::vector<std::string> fids;
  for (const auto& [fid, e] : expected) {
    if (!e.deleted) fids.push_back(fid);
  }
  auto results = (*c)->ReadMany(fids);
  for (size_t i = 0; i < fids.size(); ++i) {
    ASSERT_TRUE(results[i]) << results[i].error().ToString();
    EXPECT_EQ(results[i]->data, expected[fids[i]].data);
  }
}

// Volumes past 32 GiB need 5-byte .idx offsets; the whole (sparse) file is one registration and
// needles beyond 32 GiB are read one-sidedly like any other.
TEST_P(ReadPathTest, NeedlesBeyond32GiBInAFiveByteOffsetVolume) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  VolumeWriterOptions wo;
  wo.dir = tmp / "vols";
  wo.volume_id = 9;
  wo.offset_width = OffsetWidth::k5;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> written;
  auto append = [&](VolumeWriter& w, uint64_t id, size_t size) {
    auto data = GeneratedNeedleData(9, id, size, false);
    NeedleSpec spec;
    spec.id = id;
    spec.cookie = static_cast<uint32_t>(0x1000 + id);
    spec.data = data;
    auto e = w.Append(spec);
    ASSERT_TRUE(e) << e.error().ToString();
    written.emplace_back(FormatFileId({9, id, spec.cookie}), std::move(data));
  };
  {
    auto w = VolumeWriter::Create(wo);
    ASSERT_TRUE(w) << w.error().ToString();
    append(*w, 1, 4096);
    append(*w, 2, 100);
  }
  // Leave a 40 GiB hole, as if the volume had grown that far, then keep appending.
  const fs::path dat = tmp / "vols/9.dat";
  fs::resize_file(dat, uint64_t{40} << 30);
  {
    auto files = DiscoverVolumes(tmp / "vols");
    ASSERT_TRUE(files);
    ASSERT_EQ(files->volumes.size(), 1u);
    auto w = VolumeWriter::Open(files->volumes[0]);
    ASSERT_TRUE(w) << w.error().ToString();
    append(*w, 3, 4096);
    append(*w, 4, 300000);
  }
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  ASSERT_EQ(agent.report().exported, 1u);
  auto c = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(c) << c.error().ToString();
  for (const auto& [fid, data] : written) {
    auto r = (*c)->Read(fid);
    ASSERT_TRUE(r) << fid << ": " << r.error().ToString();
    EXPECT_EQ(r->data, data) << fid;
  }
}

// A client whose UCX cannot reach the agent (a transport this host lacks) fails clearly, or with
// --fallback http reads over the agent's HTTP GET and says so.
TEST(ReadPathFallback, HttpFallbackIsExplicitAndReported) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  std::map<std::string, Expected> expected;
  Generate(tmp / "vols", 10, NeedleVersion::kV3, 30, 1, 20000, false, 10, expected);
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  client::ClientOptions o;
  o.agent_url = agent.url();
  o.transports = "rc";  // no InfiniBand here
  o.timeout = std::chrono::seconds(5);
  auto strict = client::Client::Connect(o);
  ASSERT_FALSE(strict);
  EXPECT_NE(strict.error().message().find("--fallback http"), std::string::npos)
      << strict.error().ToString();

  o.fallback = client::FallbackMode::kHttp;
  auto c = client::Client::Connect(o);
  ASSERT_TRUE(c) << c.error().ToString();
  for (const auto& [fid, e] : expected) {
    auto r = (*c)->Read(fid);
    if (e.deleted) {
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().code(), Code::kDeleted);  // the lookup already says so
      continue;
    }
    ASSERT_TRUE(r) << fid << ": " << r.error().ToString();
    EXPECT_EQ(r->via, "http");
    EXPECT_EQ(r->data, e.data);
  }
  EXPECT_GT((*c)->stats().http_fallbacks, 0u);
}

INSTANTIATE_TEST_SUITE_P(Transports, ReadPathTest,
                         ::testing::Values(std::string("tcp"), std::string("posix,sysv,cma")),
                         [](const auto& info) {
                           return info.param == "tcp" ? std::string("tcp") : std::string("shm");
                         });

}  // namespace
}  // namespace swrdma
