// The client's zero-copy read path against an in-process agent: ReadView / ReadViews / ReadEach
// hand out verified records in registered pooled buffers (same bytes and errors as ReadMany),
// ReadEach streams every fid exactly once through a sliding window smaller than the batch, and
// the registration cache is reused (hits) once warm. tcp loopback and shared memory.
#include <filesystem>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "client/client.h"
#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "tests/generated_volume.h"
#include "tests/in_process_agent.h"
#include "tests/test_util.h"
#include "volume/volume_generator.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;

using Expected = testing::ExpectedNeedle;

class ZeroCopyReadTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fs::create_directories(tmp_ / "vols");
    GenerateOptions o;
    o.dir = tmp_ / "vols";
    o.volume_id = 5;
    o.needles = 300;
    o.min_size = 1;
    o.max_size = 300 * 1024;
    o.gzip_fraction = 0.3;
    o.delete_fraction = 0.1;
    o.seed = 21;
    auto report = testing::GenerateExpected(o, expected_);
    ASSERT_FALSE(report.needles.empty());
    for (const auto& nd : report.needles)
      fids_.push_back(FormatFileId(nd.fid));  // in write order
    agent_ = std::make_unique<testing::InProcessAgent>(std::vector<fs::path>{tmp_ / "vols"},
                                                       tmp_ / "index");
  }

  std::unique_ptr<client::Client> Connect(size_t max_inflight, bool hugepages = false) {
    client::ClientOptions o;
    o.agent_url = agent_->url();
    o.transports = GetParam();
    o.timeout = std::chrono::seconds(10);
    o.max_inflight = max_inflight;
    o.hugepages = hugepages;
    auto c = client::Client::Connect(o);
    EXPECT_TRUE(c) << c.error().ToString();
    return c ? std::move(*c) : nullptr;
  }

  // The view's bytes, decompressed as Read would.
  static std::vector<uint8_t> Plain(const client::NeedleView& v) {
    std::vector<uint8_t> d(v.data().begin(), v.data().end());
    return v.stored_gzipped() ? *Gunzip(d) : d;
  }

  testing::TempDir tmp_;
  std::map<std::string, Expected> expected_;
  std::vector<std::string> fids_;
  std::unique_ptr<testing::InProcessAgent> agent_;
};

TEST_P(ZeroCopyReadTest, ViewsHoldTheVerifiedBytesInRegisteredBuffers) {
  auto c = Connect(16);
  ASSERT_TRUE(c);
  auto views = c->ReadViews(fids_);
  ASSERT_EQ(views.size(), fids_.size());
  for (size_t i = 0; i < fids_.size(); ++i) {
    const Expected& e = expected_[fids_[i]];
    if (e.deleted) {
      ASSERT_FALSE(views[i]);
      EXPECT_EQ(views[i].error().code(), Code::kDeleted);
      continue;
    }
    ASSERT_TRUE(views[i]) << views[i].error().ToString();
    EXPECT_EQ(views[i]->via(), "rdma");
    EXPECT_TRUE(views[i]->buffer());
    // The data lies inside the registered buffer: no copy was made.
    const auto* base = reinterpret_cast<const uint8_t*>(views[i]->buffer().data());
    EXPECT_GE(views[i]->data().data(), base);
    EXPECT_LE(views[i]->data().data() + views[i]->data().size(), base + views[i]->buffer().size());
    EXPECT_EQ(Plain(*views[i]), e.data) << fids_[i];
  }
  // Every live view still holds its buffer: as many buffers out as live views.
  EXPECT_GE(c->buffer_pool_stats().buffers_out, fids_.size() * 8 / 10);
  views.clear();
  EXPECT_EQ(c->buffer_pool_stats().buffers_out, 0u);
  // Copies and views agree, and a single view too.
  auto one = c->ReadView(fids_[1]);
  auto copy = c->Read(fids_[1]);
  ASSERT_EQ(one.has_value(), copy.has_value());
  if (one) {
    EXPECT_EQ(Plain(*one), copy->data);
  }
}

TEST_P(ZeroCopyReadTest, ReadEachStreamsEveryFidOnceThroughASlidingWindow) {
  auto c = Connect(8, /*hugepages=*/true);
  ASSERT_TRUE(c);
  for (int pass = 0; pass < 3; ++pass) {
    std::multiset<size_t> seen;
    size_t ok = 0;
    c->ReadEach(fids_, [&](size_t i, Result<client::NeedleView> v) {
      seen.insert(i);
      const Expected& e = expected_[fids_[i]];
      ASSERT_EQ(v.has_value(), !e.deleted) << fids_[i];
      if (!v) return;
      EXPECT_EQ(Plain(*v), e.data) << fids_[i];
      EXPECT_NE(v->issued(), client::NeedleView::TimePoint{});  // the read's own latency
      EXPECT_LE(v->issued(), v->verified());
      ++ok;
    });
    ASSERT_EQ(seen.size(), fids_.size());
    for (size_t i = 0; i < fids_.size(); ++i)
      EXPECT_EQ(seen.count(i), 1u) << i;
    EXPECT_GT(ok, 0u);
    // Views released in the callback: nothing stays out of the pool.
    EXPECT_EQ(c->buffer_pool_stats().buffers_out, 0u);
  }
  // Three passes over the same needles: after the first, buffers come from the cache.
  const client::ClientStats& s = c->stats();
  EXPECT_GT(s.reg_cache_hits, 0u);
  EXPECT_GT(s.reg_cache_hit_rate(), 0.9)
      << s.reg_cache_hits << " hits, " << s.reg_cache_misses << " misses";
  const client::BufferPoolStats p = c->buffer_pool_stats();
  // Asked for: hugetlb pages, or the reason why not (then transparent huge pages, if allowed).
  if (p.hugepages != "hugetlb") {
    EXPECT_FALSE(p.hugepage_note.empty()) << p.hugepages;
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, ZeroCopyReadTest,
                         ::testing::Values(std::string("tcp"), std::string("posix,sysv,cma")),
                         [](const auto& info) { return info.param == "tcp" ? "tcp" : "shm"; });

}  // namespace
}  // namespace swrdma
