// Checked reads over UCX active messages (agent/read_server.h, client/checked_reader.h) against
// an in-process agent: every live needle of generated volumes comes back byte-exact and verifies;
// deleted, unknown, malformed and unauthorized fids are refused one by one, and nothing else is
// ever sent; a peer that sends garbage or lies in its headers gets nothing and does no harm.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "client/checked_reader.h"
#include "protocol/file_id.h"
#include "protocol/gzip.h"
#include "protocol/jwt.h"
#include "protocol/needle.h"
#include "protocol/read_messages.h"
#include "rdma/buffer_pool.h"
#include "rdma/ucx/memory_region.h"
#include "rdma/ucx/ucx_context.h"
#include "rdma/ucx/ucx_endpoint.h"
#include "rdma/ucx/ucx_worker.h"
#include "tests/checked_arrivals.h"
#include "tests/generated_volume.h"
#include "tests/in_process_agent.h"
#include "tests/test_util.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A client's UCX side: context, worker, endpoint to the agent, pool, checked reader.
struct Peer {
  std::optional<rdma::UcxContext> context;
  std::optional<rdma::UcxWorker> worker_storage;
  std::optional<rdma::UcxRegistrar> registrar;
  std::optional<rdma::BufferPool> pool;
  std::optional<rdma::UcxEndpoint> endpoint_storage;
  std::unique_ptr<client::CheckedReader> reader;

  rdma::UcxWorker& worker() { return *worker_storage; }
  rdma::UcxEndpoint& endpoint() { return *endpoint_storage; }

  static std::unique_ptr<Peer> Connect(const std::vector<uint8_t>& agent, const std::string& tls) {
    auto peer = std::make_unique<Peer>();
    auto ctx = rdma::UcxContext::Create({.transports = tls});
    EXPECT_TRUE(ctx.has_value()) << ctx.error().ToString();
    if (!ctx) return nullptr;
    peer->context.emplace(std::move(*ctx));
    auto w = rdma::UcxWorker::Create(*peer->context);
    EXPECT_TRUE(w.has_value());
    if (!w) return nullptr;
    peer->worker_storage.emplace(std::move(*w));
    peer->registrar.emplace(*peer->context);
    auto pool = rdma::BufferPool::Create(*peer->registrar);
    EXPECT_TRUE(pool.has_value());
    if (!pool) return nullptr;
    peer->pool.emplace(std::move(*pool));
    auto ep = rdma::UcxEndpoint::Connect(peer->worker(), agent);
    EXPECT_TRUE(ep.has_value()) << ep.error().ToString();
    if (!ep) return nullptr;
    peer->endpoint_storage.emplace(std::move(*ep));
    auto reader = client::CheckedReader::Create(peer->worker(), peer->endpoint(), *peer->pool);
    EXPECT_TRUE(reader.has_value());
    if (!reader) return nullptr;
    peer->reader = std::move(*reader);
    return peer;
  }

  ~Peer() {
    reader.reset();
    endpoint_storage.reset();
  }

  // Sends `fids` (with `tokens`, when given) in requests of `batch` and collects every answer.
  std::vector<client::CheckedArrival> ReadAll(const std::vector<std::string>& fids,
                                              const std::vector<std::string>& tokens = {},
                                              size_t batch = 64) {
    return testing::ReadAllChecked(*reader, fids, tokens, batch, std::chrono::seconds(20));
  }
};

class CheckedReadTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CheckedReadTest, EveryNeedleByteExactAndEveryRefusalPerFid) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  GenerateOptions o{.dir = tmp / "vols",
                    .volume_id = 3,
                    .needles = 300,
                    .min_size = 1,
                    .max_size = 64 * 1024,
                    .gzip_fraction = 0.3,
                    .delete_fraction = 0.1,
                    .seed = 5};
  testing::GenerateExpected(o, expected);
  GenerateOptions big{.dir = tmp / "vols",
                      .volume_id = 4,
                      .needles = 12,
                      .min_size = 1 << 20,
                      .max_size = 5 << 20,
                      .version = NeedleVersion::kV2,
                      .legacy_crc = true,
                      .seed = 6};
  testing::GenerateExpected(big, expected);
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  ASSERT_EQ(agent.report().exported, 2u);
  auto peer = Peer::Connect(agent.worker_address(), GetParam());
  ASSERT_TRUE(peer);

  std::vector<std::string> fids;
  for (const auto& [fid, e] : expected)
    fids.push_back(fid);
  // Per-fid refusals in the same batches as good reads.
  fids.push_back("not-a-fid");
  fids.push_back("77,0100000000deadbeef");  // no such volume
  fids.push_back("3,ffffff00000000");       // no such needle
  auto arrivals = peer->ReadAll(fids);
  ASSERT_EQ(arrivals.size(), fids.size());
  std::map<size_t, const client::CheckedArrival*> by_tag;
  for (const auto& a : arrivals) {
    ASSERT_TRUE(by_tag.emplace(a.tag, &a).second) << "answered twice: " << fids[a.tag];
    ASSERT_TRUE(a.error.ok()) << fids[a.tag] << ": " << a.error.ToString();
  }
  size_t ok = 0, deleted = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& a = *by_tag.at(i);
    const auto& e = expected.at(fids[i]);
    if (e.deleted) {
      EXPECT_EQ(a.header.status, ReadStatus::kDeleted) << fids[i];
      EXPECT_FALSE(a.record) << "a deleted needle's bytes were sent";
      ++deleted;
      continue;
    }
    ASSERT_EQ(a.header.status, ReadStatus::kOk) << fids[i] << ": " << a.reason;
    auto data = testing::VerifyArrival(a, fids[i]);
    ASSERT_TRUE(data.has_value()) << fids[i] << ": " << data.error().ToString();
    EXPECT_EQ(*data, e.data) << fids[i];
    ++ok;
  }
  EXPECT_GT(ok, 250u);
  EXPECT_GT(deleted, 10u);
  EXPECT_EQ(by_tag.at(expected.size())->header.status, ReadStatus::kBadFid);
  EXPECT_EQ(by_tag.at(expected.size() + 1)->header.status, ReadStatus::kUnknownVolume);
  EXPECT_EQ(by_tag.at(expected.size() + 2)->header.status, ReadStatus::kNotFound);
  const auto stats = agent.read_server().stats();
  EXPECT_EQ(stats.replies_ok, ok);
  EXPECT_EQ(stats.malformed, 0u);
}

TEST_P(CheckedReadTest, TokensAreCheckedPerFid) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  testing::GenerateExpected({.dir = tmp / "vols", .volume_id = 5, .needles = 20, .seed = 8},
                            expected);
  const std::string key = "checked-read-test-key";
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index",
                                {.jwt_read_key = key, .exposure = "checked"});
  auto peer = Peer::Connect(agent.worker_address(), GetParam());
  ASSERT_TRUE(peer);
  std::vector<std::string> fids, tokens;
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  for (const auto& [fid, e] : expected) {
    if (e.deleted) continue;
    // Alternately: a valid token, none, one for another fid, an expired one, a wrong key.
    const size_t k = fids.size() % 5;
    fids.push_back(fid);
    const std::string other = fid + "0";
    tokens.push_back(k == 0   ? SignReadJwt(fid, key, now + 60)
                     : k == 1 ? std::string()
                     : k == 2 ? SignReadJwt(other, key, now + 60)
                     : k == 3 ? SignReadJwt(fid, key, now - 60)
                              : SignReadJwt(fid, "another key", now + 60));
  }
  auto arrivals = peer->ReadAll(fids, tokens, 7);
  ASSERT_EQ(arrivals.size(), fids.size());
  for (const auto& a : arrivals) {
    const bool valid = a.tag % 5 == 0;
    if (valid) {
      ASSERT_EQ(a.header.status, ReadStatus::kOk) << fids[a.tag] << ": " << a.reason;
      auto data = testing::VerifyArrival(a, fids[a.tag]);
      ASSERT_TRUE(data.has_value()) << data.error().ToString();
      EXPECT_EQ(*data, expected.at(fids[a.tag]).data);
    } else {
      EXPECT_EQ(a.header.status, ReadStatus::kDenied) << "token case " << a.tag % 5;
      EXPECT_EQ(a.reason, "wrong jwt");
      EXPECT_FALSE(a.record);
    }
  }
  EXPECT_EQ(agent.read_server().stats().denied, fids.size() - (fids.size() + 4) / 5);
}

// Raw active messages to the request id that do not follow the protocol: the agent drops them
// all, answers nothing, and keeps serving a legitimate reader on the same endpoint.
TEST_P(CheckedReadTest, MalformedRequestsGetNothing) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "vols");
  testing::ExpectedNeedles expected;
  testing::GenerateExpected({.dir = tmp / "vols", .volume_id = 6, .needles = 10, .seed = 9},
                            expected);
  testing::InProcessAgent agent({tmp / "vols"}, tmp / "index");
  auto peer = Peer::Connect(agent.worker_address(), GetParam());
  ASSERT_TRUE(peer);
  ReadRequest good{.request_id = 9, .entries = {{expected.begin()->first, ""}}};
  std::vector<uint8_t> valid = *EncodeReadRequest(good);
  std::vector<std::vector<uint8_t>> garbage = {
      {},
      {1, 2, 3},
      std::vector<uint8_t>(valid.begin(), valid.end() - 1),  // cut short
      [&] {
        auto v = valid;
        v[16] = 0xff;  // count 255 for one entry
        return v;
      }(),
      [&] {
        auto v = valid;
        v[20] = 200;  // fid length past the end
        return v;
      }(),
      [&] {
        auto v = valid;
        v.push_back(0);  // trailing byte
        return v;
      }(),
      [&] {
        auto v = valid;
        v[0] ^= 1;  // magic
        return v;
      }(),
  };
  for (const auto& g : garbage) {
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    p.flags = UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_EAGER;
    ucs_status_ptr_t r = ucp_am_send_nbx(peer->endpoint().get(), kReadRequestAmId, nullptr, 0,
                                         g.data(), g.size(), &p);
    ASSERT_FALSE(UCS_PTR_IS_ERR(r));
    while (r != nullptr && ucp_request_check_status(r) == UCS_INPROGRESS)
      peer->worker().Progress();
    if (r != nullptr) ucp_request_free(r);
  }
  // Without the reply flag the agent has nowhere to answer: dropped as well.
  {
    ucp_request_param_t p{};
    ucs_status_ptr_t r = ucp_am_send_nbx(peer->endpoint().get(), kReadRequestAmId, nullptr, 0,
                                         valid.data(), valid.size(), &p);
    while (r != nullptr && !UCS_PTR_IS_ERR(r) && ucp_request_check_status(r) == UCS_INPROGRESS)
      peer->worker().Progress();
    if (r != nullptr && !UCS_PTR_IS_ERR(r)) ucp_request_free(r);
  }
  auto arrivals = peer->ReadAll({expected.begin()->first});
  ASSERT_EQ(arrivals.size(), 1u);
  EXPECT_EQ(arrivals[0].header.status,
            expected.begin()->second.deleted ? ReadStatus::kDeleted : ReadStatus::kOk);
  EXPECT_EQ(peer->reader->dropped(), 0u) << "the agent answered a malformed request";
  const auto stats = agent.read_server().stats();
  EXPECT_EQ(stats.malformed, garbage.size() + 1);
  EXPECT_EQ(stats.requests, 1u);
}

INSTANTIATE_TEST_SUITE_P(Transports, CheckedReadTest, ::testing::Values("tcp", "posix,sysv,cma"),
                         [](const auto& info) { return info.param == "tcp" ? "tcp" : "shm"; });

}  // namespace
}  // namespace swrdma
