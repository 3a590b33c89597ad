// Needles as the real volume server writes them in corner cases (issue 15), read through the
// one-sided path (Client) and the agent's HTTP fallback, which must both answer as weed does:
//   2  a client upload of two concatenated gzip members: all of them;
//   6  the compressed flag on data that is not gzip: the bytes as stored, 200;
//   4  TTL: weed's rule (AppendAtNs + TTL), expired is "not found" on every path;
//   8  4-byte offsets past 32 GiB: found 32 GiB further, as weed retries;
//   1  a chunk manifest (flag 0x80): the fallback serves the file its chunks make up
//      (X-File-Store: chunked), the raw manifest with ?cm=false; the client refuses it unless
//      raw is asked for, rather than returning the manifest's JSON as the file.
// The seaweedfs harness (tests/seaweedfs/) checks the same against the real weed.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "client/agent_http.h"
#include "client/client.h"
#include "protocol/byte_order.h"
#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "protocol/needle.h"
#include "tests/in_process_agent.h"
#include "tests/test_util.h"
#include "volume/volume_writer.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> Bytes(std::string_view s) {
  return {s.begin(), s.end()};
}
std::string Str(const std::vector<uint8_t>& v) {
  return {v.begin(), v.end()};
}

class WeedSemanticsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(tmp_ / "vols");
    VolumeWriterOptions wo;
    wo.dir = tmp_ / "vols";
    wo.volume_id = 4;
    auto w = VolumeWriter::Create(wo);
    ASSERT_TRUE(w) << w.error().ToString();
    const uint64_t now_ns =
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count());
    auto add = [&](uint64_t id, std::vector<uint8_t> data, auto&& set) {
      NeedleSpec spec;
      spec.id = id;
      spec.cookie = 0x1000u + static_cast<uint32_t>(id);
      spec.data = data;
      spec.last_modified = now_ns / 1'000'000'000;
      set(spec);
      auto e = w->Append(spec);
      EXPECT_TRUE(e) << e.error().ToString();
      return FormatFileId({4, id, spec.cookie});
    };
    // Appended first: AppendAtNs only grows within a volume.
    expired_ = add(1, Bytes("gone"), [&](NeedleSpec& s) {
      s.ttl = std::pair<uint8_t, uint8_t>{1, 1};  // 1 minute
      s.append_at_ns = now_ns - 120'000'000'000ull;
    });
    alive_ = add(2, Bytes("still here"),
                 [](NeedleSpec& s) { s.ttl = std::pair<uint8_t, uint8_t>{1, 3}; });  // 1 day
    const auto first = Bytes(std::string(20000, 'a') + "first member ");
    const auto second = Bytes("second member" + std::string(3000, 'b'));
    two_members_want_ = first;
    two_members_want_.insert(two_members_want_.end(), second.begin(), second.end());
    std::vector<uint8_t> two = *Gzip(first);
    const auto more = *Gzip(second);
    two.insert(two.end(), more.begin(), more.end());
    two_members_ = add(3, two, [](NeedleSpec& s) { s.gzipped = true; });
    not_gzip_data_ = Bytes("plain bytes, flagged compressed by the uploader");
    not_gzip_ = add(4, not_gzip_data_, [](NeedleSpec& s) { s.gzipped = true; });
    chunk_a_ = add(5, Bytes(std::string(7000, 'x')), [](NeedleSpec&) {});
    chunk_b_ =
        add(6, *Gzip(Bytes(std::string(5000, 'y'))), [](NeedleSpec& s) { s.gzipped = true; });
    // Out of order on purpose: weed sorts the chunks by offset.
    manifest_json_ = fmt::format(
        R"({{"name":"big.txt","mime":"text/plain","size":12000,"chunks":[)"
        R"({{"fid":"{}","offset":7000,"size":5000}},{{"fid":"{}","offset":0,"size":7000}}]}})",
        chunk_b_, chunk_a_);
    manifest_ = add(7, Bytes(manifest_json_), [](NeedleSpec& s) { s.chunk_manifest = true; });
    ASSERT_TRUE(w->Sync().ok());
    agent_ = std::make_unique<testing::InProcessAgent>(std::vector<fs::path>{tmp_ / "vols"},
                                                       tmp_ / "index");
    client::ClientOptions o;
    o.agent_url = agent_->url();
    o.transports = "tcp";
    o.timeout = std::chrono::seconds(10);
    auto c = client::Client::Connect(o);
    ASSERT_TRUE(c) << c.error().ToString();
    client_ = std::move(*c);
    http_ = std::make_unique<client::AgentHttp>(*client::ParseHttpUrl(agent_->url(), 0),
                                                std::chrono::seconds(10));
  }

  client::HttpReply Get(const std::string& target,
                        std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto r = http_->Request("GET", target, {}, {}, {}, headers);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : client::HttpReply{};
  }

  testing::TempDir tmp_;
  std::string expired_, alive_, two_members_, not_gzip_, chunk_a_, chunk_b_, manifest_;
  std::string manifest_json_;
  std::vector<uint8_t> two_members_want_, not_gzip_data_;
  std::unique_ptr<testing::InProcessAgent> agent_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<client::AgentHttp> http_;
};

TEST_F(WeedSemanticsTest, EveryGzipMemberOnBothPaths) {
  auto r = client_->Read(two_members_);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->via, "rdma");
  EXPECT_EQ(r->data, two_members_want_);
  auto h = Get("/" + two_members_);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, Str(two_members_want_));
}

TEST_F(WeedSemanticsTest, CompressedFlagWithoutGzipIsServedAsStored) {
  auto r = client_->Read(not_gzip_);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->data, not_gzip_data_);
  for (const char* accept : {"", "gzip"}) {
    auto h = Get("/" + not_gzip_, {{"Accept-Encoding", accept}});
    EXPECT_EQ(h.status, 200) << h.body;
    EXPECT_EQ(h.body, Str(not_gzip_data_));
    EXPECT_EQ(h.Header("Content-Encoding"), "") << accept;  // weed sends it only for real gzip
  }
}

TEST_F(WeedSemanticsTest, ExpiredTtlIsNotFoundOnEveryPath) {
  auto r = client_->Read(expired_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kNotFound) << r.error().ToString();
  EXPECT_NE(r.error().message().find("TTL"), std::string::npos) << r.error().ToString();
  EXPECT_EQ(Get("/" + expired_).status, 404);
  auto alive = client_->Read(alive_);
  ASSERT_TRUE(alive) << alive.error().ToString();
  EXPECT_EQ(Str(alive->data), "still here");
  EXPECT_EQ(Get("/" + alive_).status, 200);
}

TEST_F(WeedSemanticsTest, ChunkManifestsAreResolvedOrRefusedNeverServedAsTheFile) {
  auto r = client_->Read(manifest_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kUnsupported);
  EXPECT_NE(r.error().message().find("chunk manifest"), std::string::npos) << r.error().ToString();
  auto raw = client_->Read(manifest_, {.decompress = false});
  ASSERT_TRUE(raw) << raw.error().ToString();
  EXPECT_EQ(Str(raw->data), manifest_json_);

  auto h = Get("/" + manifest_);
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.Header("X-File-Store"), "chunked");
  EXPECT_EQ(h.body, std::string(7000, 'x') + std::string(5000, 'y'));
  EXPECT_EQ(h.content_type, "text/plain");
  EXPECT_EQ(h.Header("Content-Disposition"), "inline; filename=big.txt");
  auto range = Get("/" + manifest_, {{"Range", "bytes=6998-7001"}});
  EXPECT_EQ(range.status, 206);
  EXPECT_EQ(range.body, "xxyy");
  auto manifest = Get("/" + manifest_ + "?cm=false");
  EXPECT_EQ(manifest.status, 200);
  EXPECT_EQ(manifest.body, manifest_json_);
  EXPECT_EQ(manifest.Header("X-File-Store"), "");
}

// 8: a 4-byte-offset volume whose .dat grew past 32 GiB (an older volume server started records
// there; tombstones still do): the .idx offsets of those records wrap, and weed's reader retries
// 32 GiB further when the header at the stored offset has another size. The file is sparse: a
// hole of ~32 GiB costs no disk.
TEST(WeedSemantics, FourByteOffsetsPast32GiBAreReadWhereWeedReadsThem) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  VolumeWriterOptions wo;
  wo.dir = tmp / "vols";
  wo.volume_id = 9;
  wo.offset_width = OffsetWidth::k4;
  const auto low = Bytes("below the wrap: " + std::string(300, 'l'));
  std::string low_fid;
  uint64_t low_offset = 0;
  {
    auto w = VolumeWriter::Create(wo);
    ASSERT_TRUE(w) << w.error().ToString();
    NeedleSpec spec{.id = 1, .cookie = 0x11, .data = low};
    auto e = w->Append(spec);
    ASSERT_TRUE(e) << e.error().ToString();
    low_offset = e->offset;
    low_fid = FormatFileId({9, 1, 0x11});
  }
  // Written as an older volume server did: the record past 32 GiB, its entry's offset wrapped.
  constexpr uint64_t kWrap = uint64_t{32} << 30;
  const fs::path dat = tmp / "vols" / "9.dat", idx = tmp / "vols" / "9.idx";
  const int dat_fd = ::open(dat.c_str(), O_RDWR);
  const int idx_fd = ::open(idx.c_str(), O_RDWR | O_APPEND);
  ASSERT_GE(dat_fd, 0);
  ASSERT_GE(idx_fd, 0);
  struct Far {
    uint64_t id, offset;
    std::vector<uint8_t> data;
  };
  // Needle 2 wraps onto needle 1's offset (another size there); needle 3 onto a hole.
  std::vector<Far> far = {{2, kWrap + low_offset, Bytes("past 32 GiB, over needle 1")},
                          {3, kWrap + 4096, Bytes(std::string(5000, 'h') + "over a hole")}};
  for (const Far& f : far) {
    std::vector<uint8_t> record, entry;
    NeedleSpec spec{.id = f.id, .cookie = 0x20 + static_cast<uint32_t>(f.id), .data = f.data};
    ASSERT_TRUE(EncodeNeedle(spec, NeedleVersion::kV3, record).ok());
    ASSERT_EQ(::pwrite(dat_fd, record.data(), record.size(), static_cast<off_t>(f.offset)),
              static_cast<ssize_t>(record.size()));
    const uint32_t size = LoadBe32(record.data() + 12);
    EncodeIdxEntry({f.id, f.offset, size}, OffsetWidth::k4, entry);
    ASSERT_EQ(LoadBe32(entry.data() + 8), static_cast<uint32_t>((f.offset - kWrap) / 8));
    ASSERT_EQ(::write(idx_fd, entry.data(), entry.size()), static_cast<ssize_t>(entry.size()));
  }
  ::close(dat_fd);
  ::close(idx_fd);

  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  ASSERT_EQ(agent.generation(9) != 0, true) << "volume 9 not exported";
  client::ClientOptions o;
  o.agent_url = agent.url();
  o.transports = "tcp";
  o.timeout = std::chrono::seconds(10);
  auto c = client::Client::Connect(o);
  ASSERT_TRUE(c) << c.error().ToString();
  client::AgentHttp http(*client::ParseHttpUrl(agent.url(), 0), std::chrono::seconds(10));

  std::vector<std::pair<std::string, std::vector<uint8_t>>> want = {{low_fid, low}};
  for (const Far& f : far)
    want.emplace_back(FormatFileId({9, f.id, 0x20 + static_cast<uint32_t>(f.id)}), f.data);
  for (const auto& [fid, data] : want) {
    auto r = (*c)->Read(fid);
    ASSERT_TRUE(r) << fid << ": " << r.error().ToString();
    EXPECT_EQ(r->data, data) << fid;
    auto h = http.Request("GET", "/" + fid, {}, {}, {}, {});
    ASSERT_TRUE(h) << h.error().ToString();
    EXPECT_EQ(h->status, 200) << fid << ": " << h->body;
    EXPECT_EQ(h->body, Str(data)) << fid;
  }
}

}  // namespace
}  // namespace swrdma
