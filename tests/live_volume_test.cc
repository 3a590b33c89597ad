// The agent follows a volume server's changes without a restart: appends, deletes, new and
// removed volumes, vacuum (rename over with revision + 1), truncation. Readers get verified bytes
// or a clear error, never wrong bytes.
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "client/client.h"
#include "protocol/file_id.h"
#include "tests/in_process_agent.h"
#include "tests/test_util.h"
#include "volume/volume_files.h"
#include "volume/volume_generator.h"
#include "volume/volume_writer.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The agent follows changes within ~20-50 ms here (inotify + a debounced scan); the promise is
// 1 s. Tests allow 3 s so that a loaded CI machine cannot make them flaky: they check that a
// change is followed without a restart, not how fast (bench/ measures that).
constexpr auto kFollowDeadline = std::chrono::seconds(3);

struct Needle {
  FileId fid;
  std::vector<uint8_t> data;
};

class LiveVolumeTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(tmp_ / "vols"); }

  VolumeWriter NewVolume(uint32_t vid, uint16_t revision = 0, fs::path dir = {}) {
    VolumeWriterOptions o;
    o.dir = dir.empty() ? tmp_ / "vols" : dir;
    o.volume_id = vid;
    o.compaction_revision = revision;
    auto w = VolumeWriter::Create(o);
    EXPECT_TRUE(w) << w.error().ToString();
    return std::move(*w);
  }
  Needle Append(VolumeWriter& w, uint64_t id, size_t size) {
    Needle n{{w.files().volume_id, id, static_cast<uint32_t>(0xC0FFEE00 + id)},
             GeneratedNeedleData(w.files().volume_id, id, size, false)};
    NeedleSpec spec;
    spec.id = id;
    spec.cookie = n.fid.cookie;
    spec.data = n.data;
    EXPECT_TRUE(w.Append(spec)) << id;
    return n;
  }
  std::unique_ptr<client::Client> Connect(
      const testing::InProcessAgent& agent,
      std::chrono::milliseconds ttl = client::ClientOptions{}.lookup_cache_ttl) {
    client::ClientOptions o;
    o.agent_url = agent.url();
    o.lookup_cache_ttl = ttl;
    o.transports = "tcp";
    auto c = client::Client::Connect(o);
    EXPECT_TRUE(c) << c.error().ToString();
    return std::move(*c);
  }
  // Reads until `accept` holds for the result or the deadline passes; returns the last result.
  template <typename Pred>
  Result<client::NeedleData> ReadUntil(client::Client& c, const FileId& fid, Pred accept,
                                       Clock::duration deadline = kFollowDeadline) {
    const auto end = Clock::now() + deadline;
    while (true) {
      auto r = c.Read(FormatFileId(fid));
      if (accept(r) || Clock::now() >= end) return r;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  static bool MapsMention(const std::string& s) {
    std::ifstream maps("/proc/self/maps");
    std::stringstream ss;
    ss << maps.rdbuf();
    return ss.str().find(s) != std::string::npos;
  }

  testing::TempDir tmp_{"swrdma-live"};
};

auto IsOk = [](const Result<client::NeedleData>& r) { return r.has_value(); };
auto Is = [](Code code) {
  return [code](const Result<client::NeedleData>& r) { return !r && r.error().code() == code; };
};

TEST_F(LiveVolumeTest, AppendsOverwritesAndDeletesAreFollowedWithinASecond) {
  auto w = NewVolume(5);
  std::vector<Needle> needles;
  for (uint64_t id = 1; id <= 5; ++id)
    needles.push_back(Append(w, id, 3000));
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", {.watch = true});
  // No lookup cache: the 1 s budget is the agent's (a caching client adds its TTL to it).
  auto c = Connect(agent, std::chrono::milliseconds(0));
  const uint64_t generation = agent.generation(5);
  ASSERT_NE(generation, 0u);

  for (uint64_t id = 6; id <= 40; ++id) {
    needles.push_back(Append(w, id, 100 + id * 997 % 50000));
    auto r = ReadUntil(*c, needles.back().fid, IsOk);
    ASSERT_TRUE(r) << "appended needle " << id
                   << " not readable within 1 s: " << r.error().ToString();
    EXPECT_EQ(r->data, needles.back().data);
  }
  // Served in place from the growth reserve: no re-export for appends.
  EXPECT_EQ(agent.generation(5), generation);

  // Overwrites (same fid, new record appended): seen as promptly as deletes, never the old
  // record, which still passes every check of the reader.
  for (uint64_t id : {3u, 9u}) {
    Needle again = needles[id - 1];
    again.data = GeneratedNeedleData(5, id + 1000, 2000 + id, false);
    NeedleSpec spec;
    spec.id = id;
    spec.cookie = again.fid.cookie;
    spec.data = again.data;
    ASSERT_TRUE(w.Append(spec)) << id;
    auto r = ReadUntil(*c, again.fid, [&](const Result<client::NeedleData>& got) {
      return got && got->data == again.data;
    });
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->data, again.data) << "overwrite of needle " << id << " not followed";
    needles[id - 1] = again;
  }
  for (uint64_t id : {2u, 7u, 40u}) {
    ASSERT_TRUE(w.Delete(id, needles[id - 1].fid.cookie).ok());
    auto r = ReadUntil(*c, needles[id - 1].fid, Is(Code::kDeleted));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Code::kDeleted) << r.error().ToString();
  }
  for (const auto& n : needles) {
    if (n.fid.needle_id == 2 || n.fid.needle_id == 7 || n.fid.needle_id == 40) continue;
    auto r = c->Read(FormatFileId(n.fid));
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->data, n.data);
  }
}

TEST_F(LiveVolumeTest, NewVolumesAppearAndRemovedOnesDisappear) {
  auto w1 = NewVolume(1);
  Needle a = Append(w1, 1, 1000);
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", {.watch = true});
  auto c = Connect(agent, std::chrono::milliseconds(0));

  auto w2 = NewVolume(2);
  Needle b = Append(w2, 1, 2000);
  auto r = ReadUntil(*c, b.fid, IsOk);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->data, b.data);

  fs::remove(tmp_ / "vols/2.dat");
  fs::remove(tmp_ / "vols/2.idx");
  fs::remove(tmp_ / "vols/2.vif");
  r = ReadUntil(*c, b.fid, Is(Code::kUnknownVolume));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kUnknownVolume) << r.error().ToString();
  EXPECT_TRUE(c->Read(FormatFileId(a.fid)));
}

TEST_F(LiveVolumeTest, VacuumExportsANewGenerationAndReleasesTheOldFile) {
  auto w = NewVolume(3);
  std::vector<Needle> needles;
  for (uint64_t id = 1; id <= 30; ++id)
    needles.push_back(Append(w, id, 500 + id * 131));
  for (uint64_t id = 1; id <= 30; id += 3)
    ASSERT_TRUE(w.Delete(id, needles[id - 1].fid.cookie).ok());
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index",
                                {.watch = true, .retire_grace = std::chrono::milliseconds(300)});
  // A long lookup cache: the second pass reads through stale cached addresses on purpose.
  auto c = Connect(agent, std::chrono::minutes(5));
  for (const auto& n : needles) {
    if (n.fid.needle_id % 3 != 1) {
      ASSERT_TRUE(c->Read(FormatFileId(n.fid)));  // lookups now cached
    }
  }
  const uint64_t old_generation = agent.generation(3);
  const std::string old_dat_name = "vols/3.dat";

  // Vacuum as the volume server does: write the live needles into a new file with revision + 1,
  // then rename it over the old .dat/.idx.
  fs::create_directories(tmp_ / "stage");
  {
    auto v = NewVolume(3, 1, tmp_ / "stage");
    for (const auto& n : needles) {
      if (n.fid.needle_id % 3 == 1) continue;
      NeedleSpec spec;
      spec.id = n.fid.needle_id;
      spec.cookie = n.fid.cookie;
      spec.data = n.data;
      ASSERT_TRUE(v.Append(spec));
    }
  }
  fs::rename(tmp_ / "stage/3.vif", tmp_ / "vols/3.vif");
  fs::rename(tmp_ / "stage/3.dat", tmp_ / "vols/3.dat");
  fs::rename(tmp_ / "stage/3.idx", tmp_ / "vols/3.idx");

  const auto until = Clock::now() + kFollowDeadline;
  while (agent.generation(3) == old_generation && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_NE(agent.generation(3), old_generation) << "vacuum not followed in time";
  // Live needles read correctly right away and after the old generation's grace period (its pages
  // are zeros then: only the current generation is ever sent).
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& n : needles) {
      auto r = c->Read(FormatFileId(n.fid));
      if (n.fid.needle_id % 3 == 1) {
        ASSERT_FALSE(r);
        EXPECT_TRUE(r.error().code() == Code::kNotFound || r.error().code() == Code::kDeleted)
            << r.error().ToString();
        continue;
      }
      ASSERT_TRUE(r) << "pass " << pass << ": " << r.error().ToString();
      EXPECT_EQ(r->data, n.data);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + 2100));  // grace + next scan
  }
  // Checked reads: the agent resolves against the generation it serves now, so nothing the
  // client holds goes stale and nothing needs a second round.
  EXPECT_EQ(c->stats().retries, 0u);
  // The replaced file (now unlinked) is no longer mapped.
  EXPECT_FALSE(MapsMention((tmp_ / old_dat_name).string() + " (deleted)"));
}

// Issue 15 (14): weed's vacuum commit renames the new .dat and the new .idx one after the other
// under a .cpc marker; a .dat of one generation is never paired with an .idx of the other.
TEST_F(LiveVolumeTest, VacuumCommitIsFollowedOnlyOnceTheMarkerIsGone) {
  auto w = NewVolume(5);
  std::vector<Needle> needles;
  for (uint64_t id = 1; id <= 20; ++id)
    needles.push_back(Append(w, id, 300 + id * 97));
  for (uint64_t id = 1; id <= 20; id += 2)
    ASSERT_TRUE(w.Delete(id, needles[id - 1].fid.cookie).ok());
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index",
                                {.watch = true, .retire_grace = std::chrono::milliseconds(300)});
  auto c = Connect(agent, std::chrono::milliseconds(0));
  const uint64_t old_generation = agent.generation(5);
  fs::create_directories(tmp_ / "stage");
  {
    auto v = NewVolume(5, 1, tmp_ / "stage");
    for (const auto& n : needles) {
      if (n.fid.needle_id % 2 == 1) continue;
      NeedleSpec spec;
      spec.id = n.fid.needle_id;
      spec.cookie = n.fid.cookie;
      spec.data = n.data;
      ASSERT_TRUE(v.Append(spec));
    }
  }
  auto read_all = [&](const char* when) {
    for (const auto& n : needles) {
      if (n.fid.needle_id % 2 == 1) continue;
      auto r = c->Read(FormatFileId(n.fid));
      ASSERT_TRUE(r) << when << ": " << r.error().ToString();
      EXPECT_EQ(r->data, n.data) << when;
    }
  };
  std::ofstream(tmp_ / "vols/5.cpc") << "";
  fs::rename(tmp_ / "stage/5.dat", tmp_ / "vols/5.dat");  // new .dat, old .idx
  // Rescans happen (the rename and the marker are events); the old export keeps serving.
  for (int i = 0; i < 10; ++i) {
    read_all("new .dat beside the old .idx");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(agent.generation(5), old_generation);
  fs::rename(tmp_ / "stage/5.idx", tmp_ / "vols/5.idx");
  fs::rename(tmp_ / "stage/5.vif", tmp_ / "vols/5.vif");
  fs::remove(tmp_ / "vols/5.cpc");
  const auto until = Clock::now() + kFollowDeadline;
  while (agent.generation(5) == old_generation && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_NE(agent.generation(5), old_generation) << "vacuum commit not followed in time";
  read_all("after the commit");
}

TEST_F(LiveVolumeTest, TruncationNeverCrashesAndIsExportedAgain) {
  auto w = NewVolume(4);
  std::vector<Needle> needles;
  for (uint64_t id = 1; id <= 20; ++id)
    needles.push_back(Append(w, id, 20000));
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", {.watch = true});
  auto c = Connect(agent);
  for (const auto& n : needles)
    ASSERT_TRUE(c->Read(FormatFileId(n.fid)));
  const uint64_t old_generation = agent.generation(4);

  // Cut the .dat in the middle of needle 11 (as a failed write's truncate would, but deeper).
  const uint64_t cut = 8 + 10 * (20000 + 64);
  fs::resize_file(tmp_ / "vols/4.dat", cut);
  for (const auto& n : needles) {
    auto r = c->Read(FormatFileId(n.fid));  // concurrently with the agent noticing
    if (r) {
      EXPECT_EQ(r->data, n.data);  // never wrong bytes
    }
  }
  const auto until = Clock::now() + kFollowDeadline;
  while (agent.generation(4) == old_generation && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_NE(agent.generation(4), old_generation) << "truncation not followed in time";
  for (const auto& n : needles) {
    auto r = ReadUntil(*c, n.fid, [&](const auto& r) {
      return n.fid.needle_id <= 10 ? r.has_value() : !r.has_value();
    });
    if (n.fid.needle_id <= 10) {
      ASSERT_TRUE(r) << r.error().ToString();
      EXPECT_EQ(r->data, n.data);
    } else {
      ASSERT_FALSE(r) << "needle " << n.fid.needle_id << " lies past the cut";
    }
  }
}

TEST_F(LiveVolumeTest, ClientSurvivesAnAgentRestart) {
  auto w = NewVolume(6);
  std::vector<Needle> needles;
  for (uint64_t id = 1; id <= 10; ++id)
    needles.push_back(Append(w, id, 4000));
  std::unique_ptr<client::Client> c;
  uint16_t port = 0;
  {
    testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index");
    port = agent.port();
    c = Connect(agent, std::chrono::minutes(5));
    for (const auto& n : needles)
      ASSERT_TRUE(c->Read(FormatFileId(n.fid)));
  }
  // Stopped: reads fail clearly (the client tries to reconnect, boundedly, then gives up).
  auto down = c->Read(FormatFileId(needles[0].fid));
  ASSERT_FALSE(down);
  EXPECT_NE(down.error().message().find("reconnecting"), std::string::npos)
      << down.error().ToString();

  // A new agent process on the same port: new worker address, new rkeys, same index directory.
  testing::InProcessAgent agent({tmp_ / "vols"}, tmp_ / "index", {.port = port});
  for (const auto& n : needles) {
    auto r = c->Read(FormatFileId(n.fid));
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->data, n.data);
  }
  EXPECT_GE(c->stats().reconnects, 1u);
}

}  // namespace
}  // namespace swrdma
