// Erasure-coded volumes end to end in one process (issue 16): volumes encoded as `weed shell
// ec.encode` lays them out (volume/ec_volume.h) -> agent (agent/ec_export.h: shards mapped, .ecx
// searched, .ecj deletions) -> client checked reads over tcp and shared memory -> every byte
// compared with what was written. No mock: the real agent pieces, UCX on loopback.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "agent/ec_export.h"
#include "client/client.h"
#include "protocol/byte_order.h"
#include "protocol/file_id.h"
#include "protocol/messages.h"
#include "tests/generated_volume.h"
#include "tests/in_process_agent.h"
#include "tests/test_util.h"
#include "volume/ec_volume.h"
#include "volume/volume_files.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;

// Generates volume `vid` in `src` and encodes it into `vols` (no .dat there, as after ec.encode).
void EncodeGenerated(const fs::path& src, const fs::path& vols, uint32_t vid, uint64_t needles,
                     uint64_t min, uint64_t max, uint64_t seed, testing::ExpectedNeedles& expected,
                     double delete_fraction = 0.1) {
  GenerateOptions o;
  o.dir = src;
  o.volume_id = vid;
  o.needles = needles;
  o.min_size = min;
  o.max_size = max;
  o.gzip_fraction = 0.3;
  o.delete_fraction = delete_fraction;
  o.seed = seed;
  auto report = testing::GenerateExpected(o, expected);
  ASSERT_GT(report.needles.size(), 0u);
  const std::string base = std::to_string(vid);
  Status s = ec::EncodeEcVolume(src / (base + ".dat"), src / (base + ".idx"), vols, base, {});
  ASSERT_TRUE(s.ok()) << s.ToString();
}

// Volume 5 of 90 needles up to 400 KiB (past 10 MiB: every block and row boundary), encoded
// from tmp/src into tmp/vols.
void EncodeRowSpanning(const fs::path& tmp, uint64_t seed, testing::ExpectedNeedles& expected) {
  fs::create_directories(tmp / "src");
  fs::create_directories(tmp / "vols");
  EncodeGenerated(tmp / "src", tmp / "vols", 5, 90, 1, 400 * 1024, seed, expected);
}

size_t LiveCount(const testing::ExpectedNeedles& expected) {
  size_t live = 0;
  for (const auto& [fid, e] : expected)
    live += e.deleted ? 0 : 1;
  return live;
}

void AppendEcj(const fs::path& ecj, uint64_t needle_id) {
  std::ofstream out(ecj, std::ios::binary | std::ios::app);
  uint8_t b[8];
  StoreBe64(b, needle_id);
  out.write(reinterpret_cast<const char*>(b), sizeof(b));
}

// Waits up to 10 s for the agent's one EC volume to list `n` shards held (its scan saw a change).
bool ShardsHeldBecome(client::Client& c, size_t n) {
  for (int i = 0; i < 200; ++i) {
    auto v = c.Volumes();
    if (v && v->volumes.size() == 1 && v->volumes[0].ec_shards.size() == n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

class EcReadTest : public ::testing::TestWithParam<std::string> {
 protected:
  client::ClientOptions ClientFor(const testing::InProcessAgent& agent) {
    client::ClientOptions o;
    o.agent_url = agent.url();
    o.transports = GetParam();
    o.timeout = std::chrono::seconds(10);
    return o;
  }

  // Reads every fid of `expected` and checks each answer: the bytes of a live needle, not found
  // for one deleted before encoding (weed's .ecx leaves it out: the volume server answers 404).
  // Returns how many read back.
  size_t ReadAll(client::Client& c, const testing::ExpectedNeedles& expected) {
    std::vector<std::string> fids;
    for (const auto& [fid, e] : expected)
      fids.push_back(fid);
    auto results = c.ReadMany(fids);
    size_t ok = 0;
    for (size_t i = 0; i < fids.size(); ++i) {
      const auto& e = expected.at(fids[i]);
      if (e.deleted) {
        EXPECT_FALSE(results[i]) << fids[i];
        if (!results[i]) {
          EXPECT_EQ(results[i].error().code(), Code::kNotFound) << fids[i];
        }
        continue;
      }
      EXPECT_TRUE(results[i]) << fids[i] << ": " << results[i].error().ToString();
      if (!results[i]) continue;
      EXPECT_EQ(results[i]->data, e.data) << fids[i];
      ok += results[i]->data == e.data ? 1 : 0;
    }
    return ok;
  }
};

// Needles across 1 MiB block boundaries (the next shard) and, past 10 MiB, across the row
// boundary (shard 9 back to shard 0 of the next row).
TEST_P(EcReadTest, EveryNeedleOfAnEncodedVolumeReadsBackVerified) {
  testing::TempDir tmp;
  testing::ExpectedNeedles expected;
  ASSERT_NO_FATAL_FAILURE(EncodeRowSpanning(tmp.path(), 21, expected));
  ASSERT_FALSE(fs::exists(tmp / "vols/5.dat"));
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  ASSERT_EQ(agent.report().ec_volumes, 1u);
  auto c = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(ReadAll(**c, expected), LiveCount(expected));
  EXPECT_GT(fs::file_size(tmp / "src/5.dat"), uint64_t{10} << 20) << "spans a whole row";
}

// A volume server that lost data shards (a disk gone) but holds at least ten: the agent rebuilds
// the pieces from parity, as the volume server does, and the client verifies the records as any.
TEST_P(EcReadTest, LostDataShardsAreRebuiltFromParity) {
  testing::TempDir tmp;
  testing::ExpectedNeedles expected;
  ASSERT_NO_FATAL_FAILURE(EncodeRowSpanning(tmp.path(), 23, expected));
  // Three data shards: the first, one in the middle, the last of the row.
  for (const char* shard : {"ec00", "ec04", "ec09"})
    fs::remove(tmp / "vols" / ("5." + std::string(shard)));
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index",
                                testing::InProcessAgentOptions{.watch = true});
  auto c = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(c) << c.error().ToString();
  const size_t live = LiveCount(expected);
  const agent::EcRebuildTotals before = agent::EcRebuildTotalsNow();
  EXPECT_EQ(ReadAll(**c, expected), live);
  const agent::EcRebuildTotals after = agent::EcRebuildTotalsNow();
  EXPECT_GT(after.pieces, before.pieces);
  EXPECT_GT(after.bytes, before.bytes);
  EXPECT_EQ(after.failures, before.failures);

  // A parity shard goes while the agent serves (the scan makes a new generation): ten are left,
  // still enough. Then a data shard: records with a piece in a lost shard are clear errors.
  fs::remove(tmp / "vols/5.ec12");
  ASSERT_TRUE(ShardsHeldBecome(**c, 10));
  EXPECT_EQ(ReadAll(**c, expected), live);
  fs::remove(tmp / "vols/5.ec02");
  ASSERT_TRUE(ShardsHeldBecome(**c, 9));
  std::vector<std::string> fids;
  for (const auto& [fid, e] : expected) {
    if (!e.deleted) fids.push_back(fid);
  }
  auto results = (*c)->ReadMany(fids);
  size_t refused = 0;
  for (size_t i = 0; i < fids.size(); ++i) {
    if (results[i]) {
      EXPECT_EQ(results[i]->data, expected.at(fids[i]).data) << fids[i];
      continue;
    }
    ++refused;
    EXPECT_EQ(results[i].error().code(), Code::kUnknownVolume) << results[i].error().ToString();
    EXPECT_NE(results[i].error().message().find("not on this server"), std::string::npos)
        << results[i].error().ToString();
  }
  EXPECT_GT(refused, 0u);
  EXPECT_LT(refused, fids.size()) << "records in shards still held are served";
}

TEST_P(EcReadTest, RealFixtureEncodedReadsBackAsFromTheDat) {
  SWRDMA_REQUIRE_FIXTURES(fixtures);
  testing::TempDir tmp;
  fs::create_directories(tmp / "dat");
  fs::create_directories(tmp / "vols");
  fs::create_symlink(fixtures / "ec_1.dat", tmp / "dat/1.dat");
  fs::create_symlink(fixtures / "ec_1.idx", tmp / "dat/1.idx");
  Status s = ec::EncodeEcVolume(tmp / "dat/1.dat", tmp / "dat/1.idx", tmp / "vols", "1", {});
  ASSERT_TRUE(s.ok()) << s.ToString();
  // The reference: the same needles served from the .dat by another agent.
  testing::InProcessAgent from_dat({tmp / "dat"}, tmp / "index-dat");
  testing::InProcessAgent from_ec({tmp / "vols"}, tmp / "index-ec");
  ASSERT_EQ(from_ec.report().ec_volumes, 1u);
  auto ref = client::Client::Connect(ClientFor(from_dat));
  auto c = client::Client::Connect(ClientFor(from_ec));
  ASSERT_TRUE(ref && c);
  std::map<uint64_t, IdxEntry> last;
  ASSERT_TRUE(ScanIdxFile(tmp / "dat/1.idx", OffsetWidth::k4, 0,
                          [&](const IdxEntry& e) { last[e.needle_id] = e; }));
  // Fids need cookies: the reference agent's sample of every live needle has them.
  auto sampled = from_dat.volumes().Sample(1, 10'000, 1);
  ASSERT_TRUE(sampled);
  const std::vector<std::string> fids = sampled->fids;
  ASSERT_EQ(fids.size(), 298u);
  auto want = (*ref)->ReadMany(fids);
  auto got = (*c)->ReadMany(fids);
  size_t spanning = 0;
  for (size_t i = 0; i < fids.size(); ++i) {
    ASSERT_TRUE(want[i]) << want[i].error().ToString();
    ASSERT_TRUE(got[i]) << fids[i] << ": " << got[i].error().ToString();
    EXPECT_EQ(got[i]->data, want[i]->data) << fids[i];
    EXPECT_EQ(got[i]->crc_form, CrcForm::kLegacy) << fids[i];
    const IdxEntry& e = last.at(ParseFileId(fids[i])->needle_id);
    const uint64_t end = e.offset + NeedleRecordLength(e.size, NeedleVersion::kV3);
    spanning += (e.offset >> 20) != ((end - 1) >> 20) ? 1 : 0;
  }
  EXPECT_GT(spanning, 0u) << "some needles cross a 1 MiB block (two shards)";
}

TEST_P(EcReadTest, DeletionsInTheEcjAndMissingShardsAreClearErrors) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "src");
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  EncodeGenerated(tmp / "src", tmp / "vols", 6, 40, 50 * 1024, 120 * 1024, 22, expected, 0);
  // Shard 1 (the .dat's second MiB) is held by another server, and so are the parity shards:
  // nine shards here cannot rebuild a tenth.
  for (const char* shard : {"ec01", "ec10", "ec11", "ec12", "ec13"})
    fs::remove(tmp / "vols" / ("6." + std::string(shard)));
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index",
                                testing::InProcessAgentOptions{.watch = true});
  auto c = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(c) << c.error().ToString();
  std::vector<std::string> fids;
  for (const auto& [fid, e] : expected)
    fids.push_back(fid);
  auto first = (*c)->ReadMany(fids);
  size_t ok = 0, elsewhere = 0;
  std::string deleted_fid;
  for (size_t i = 0; i < fids.size(); ++i) {
    if (first[i]) {
      EXPECT_EQ(first[i]->data, expected.at(fids[i]).data) << fids[i];
      ++ok;
      if (deleted_fid.empty()) deleted_fid = fids[i];
      continue;
    }
    EXPECT_EQ(first[i].error().code(), Code::kUnknownVolume) << first[i].error().ToString();
    EXPECT_NE(first[i].error().message().find("shard(s) 1"), std::string::npos)
        << first[i].error().ToString();
    ++elsewhere;
  }
  EXPECT_GT(ok, 0u);
  EXPECT_GT(elsewhere, 0u);

  // The volume server journals a deletion in the .ecj: the agent follows it.
  ASSERT_FALSE(deleted_fid.empty());
  AppendEcj(tmp / "vols/6.ecj", ParseFileId(deleted_fid)->needle_id);
  Result<client::NeedleData> r = Error(Code::kInternal, "not read");
  for (int i = 0; i < 100; ++i) {
    r = (*c)->Read(deleted_fid);
    if (!r && r.error().code() == Code::kDeleted) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kDeleted) << r.error().ToString();

  // A wrong cookie is not found, as on the volume server.
  size_t live = 0;
  while (live < fids.size() && (!first[live] || fids[live] == deleted_fid))
    ++live;
  ASSERT_LT(live, fids.size());
  FileId f = *ParseFileId(fids[live]);
  f.cookie ^= 1;
  auto wrong = (*c)->Read(FormatFileId(f));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), Code::kNotFound) << wrong.error().ToString();
}

TEST_P(EcReadTest, ApiDescribesEcVolumesAndLookupsSayEc) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "src");
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  EncodeGenerated(tmp / "src", tmp / "vols", 8, 20, 100, 2000, 23, expected, 0);
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  auto c = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(c);
  auto list = (*c)->Volumes();
  ASSERT_TRUE(list) << list.error().ToString();
  ASSERT_EQ(list->volumes.size(), 1u);
  const VolumeDescriptor& d = list->volumes[0];
  EXPECT_TRUE(d.ec);
  EXPECT_EQ(d.volume_id, 8u);
  EXPECT_EQ(d.ec_shards.size(), ec::kDefaultDataShards + ec::kDefaultParityShards);
  EXPECT_TRUE(d.regions.empty());
  EXPECT_EQ(d.size, fs::file_size(tmp / "src/8.dat"));

  LookupRequest req;
  req.fids.push_back(expected.begin()->first);
  req.fids.push_back("8,ffffffff00000000");
  LookupResponse resp = agent.volumes().Lookup(req);
  ASSERT_EQ(resp.results.size(), 2u);
  EXPECT_EQ(resp.results[0].status, LookupStatus::kOk) << resp.results[0].error;
  EXPECT_TRUE(resp.results[0].ec);
  EXPECT_EQ(resp.results[0].address, 0u);
  EXPECT_EQ(resp.results[1].status, LookupStatus::kNotFound);
  // Benchmarks pick fids by sampling: every needle of the volume, cookies included.
  auto sampled = agent.volumes().Sample(8, 100, 7);
  ASSERT_TRUE(sampled) << sampled.error().ToString();
  EXPECT_EQ(sampled->live_needles, expected.size());
  std::vector<std::string> got = sampled->fids, want;
  for (const auto& [fid, e] : expected)
    want.push_back(fid);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);

  // Round trip through the wire form keeps "ec".
  auto back = LookupResponseFromJson(ToJson(resp));
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->results[0].ec);
  EXPECT_FALSE(back->results[1].ec);
}

// Damaged EC files are refused, never served: an .ecx entry pointing past the encoded volume, a
// truncated shard, a .vif that is not JSON.
TEST_P(EcReadTest, DamagedEcFilesAreRefusedNeverServed) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "src");
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  EncodeGenerated(tmp / "src", tmp / "vols", 11, 30, 20 * 1024, 90 * 1024, 24, expected, 0);
  // The first .ecx entry (the smallest id) now points 32 GiB into a volume of a few MiB.
  std::string first_fid;
  uint64_t smallest = UINT64_MAX;
  for (const auto& [fid, e] : expected) {
    const uint64_t id = ParseFileId(fid)->needle_id;
    if (id < smallest) smallest = id, first_fid = fid;
  }
  {
    std::fstream ecx(tmp / "vols/11.ecx", std::ios::in | std::ios::out | std::ios::binary);
    uint8_t entry[16];
    ecx.read(reinterpret_cast<char*>(entry), sizeof(entry));
    ASSERT_EQ(LoadBe64(entry), smallest);
    StoreBe32(entry + 8, 0xFFFFFFF0u);
    ecx.seekp(0);
    ecx.write(reinterpret_cast<const char*>(entry), sizeof(entry));
  }
  // Shard 1 cut short: needles in the .dat's second MiB lie past its end.
  fs::resize_file(tmp / "vols/11.ec01", 4096);
  // weed writes the .vif last, and the agent opens a new EC volume once its .vif is at least as
  // new as every shard and the .ecx (agent/volume_set.cc); these edits came after the .vif. Within
  // one timestamp tick they look as old as it, one tick later the volume waits for a second scan
  // (this test failed so under load).
  fs::last_write_time(tmp / "vols/11.vif", std::max(fs::last_write_time(tmp / "vols/11.ecx"),
                                                    fs::last_write_time(tmp / "vols/11.ec01")) +
                                               std::chrono::seconds(1));
  // Volume 12: a .vif that is not JSON.
  EncodeGenerated(tmp / "src", tmp / "vols", 12, 5, 100, 200, 25, expected, 0);
  {
    std::ofstream vif(tmp / "vols/12.vif", std::ios::trunc);
    vif << "{not json";
  }
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  EXPECT_EQ(agent.report().failed, 1u);
  std::string all;
  for (const auto& m : agent.report().messages)
    all += m + "\n";
  EXPECT_NE(all.find("12.vif"), std::string::npos) << all;
  auto c = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(c) << c.error().ToString();
  std::vector<std::string> fids;
  for (const auto& [fid, e] : expected)
    fids.push_back(fid);
  auto results = (*c)->ReadMany(fids);
  size_t outside = 0, short_shard = 0, ok = 0;
  for (size_t i = 0; i < fids.size(); ++i) {
    if (results[i]) {
      EXPECT_EQ(results[i]->data, expected.at(fids[i]).data) << fids[i];  // never wrong bytes
      ++ok;
      continue;
    }
    const std::string msg = results[i].error().ToString();
    if (fids[i].starts_with("12,")) {
      EXPECT_EQ(results[i].error().code(), Code::kUnknownVolume) << msg;
      continue;
    }
    EXPECT_EQ(results[i].error().code(), Code::kNotFound) << msg;
    if (fids[i] == first_fid) {
      EXPECT_NE(msg.find("outside the encoded volume"), std::string::npos) << msg;
      ++outside;
    } else {
      EXPECT_NE(msg.find("shard 1 is 4096 bytes"), std::string::npos) << msg;
      ++short_shard;
    }
  }
  EXPECT_EQ(outside, 1u);
  EXPECT_GT(short_shard, 0u);
  EXPECT_GT(ok, 0u);
}

// weed's multi-disk servers: shards of one volume on several disks, the .ecx/.ecj/.vif on one.
// The agent, given every disk, serves the volume from all its shards.
TEST_P(EcReadTest, ShardsSpreadOverDisksOfOneServerAreMerged) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "src");
  fs::create_directories(tmp / "disk1");
  fs::create_directories(tmp / "disk2");
  fs::create_directories(tmp / "disk3");
  testing::ExpectedNeedles expected;
  EncodeGenerated(tmp / "src", tmp / "disk1", 13, 40, 50 * 1024, 150 * 1024, 26, expected, 0);
  for (uint32_t shard : {1u, 2u, 3u, 10u})
    fs::rename(tmp / "disk1" / ("13" + ec::ShardExtension(shard)),
               tmp / "disk2" / ("13" + ec::ShardExtension(shard)));
  // Another volume's shards with no .ecx anywhere: reported, not served.
  fs::copy_file(tmp / "disk1/13.ec00", tmp / "disk3/14.ec00");
  testing::InProcessAgent agent({tmp / "disk1", tmp / "disk2", tmp / "disk3"}, tmp / "index");
  EXPECT_EQ(agent.report().ec_volumes, 1u);
  std::string all;
  for (const auto& m : agent.report().messages)
    all += m + "\n";
  EXPECT_NE(all.find("EC volume 14"), std::string::npos) << all;
  auto c = client::Client::Connect(ClientFor(agent));
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(ReadAll(**c, expected), expected.size());
  auto list = (*c)->Volumes();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->volumes.size(), 1u);
  EXPECT_EQ(list->volumes[0].ec_shards.size(), 14u);
}

INSTANTIATE_TEST_SUITE_P(Transports, EcReadTest, ::testing::Values("tcp", "posix,sysv,cma"),
                         [](const auto& info) { return info.param == "tcp" ? "tcp" : "shm"; });

}  // namespace
}  // namespace swrdma
