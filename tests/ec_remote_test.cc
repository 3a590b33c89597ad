// EC shards registered for one-sided reads (agent/ec_export.h EcExport::RegisterShards and
// RemoteIntervals), on the host: a recording Registrar stands in for the verbs one (the real one
// runs in the Soft-RoCE VM, tests/vm/guest/agent_pass.sh step 7). Since the registrations are
// of this process's own mappings, the intervals a lookup answers are followed here byte by byte:
// together they must be exactly the needle's record in the `.dat` the volume was encoded from.
#include <filesystem>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>

#include "agent/agent_service.h"
#include "agent/ec_export.h"
#include "agent/volume_set.h"
#include "index/needle_index.h"
#include "protocol/file_id.h"
#include "protocol/messages.h"
#include "protocol/wire.h"
#include "rdma/pin_budget.h"
#include "rdma/registration.h"
#include "rdma/ucx/ucx_context.h"
#include "tests/generated_volume.h"
#include "tests/test_util.h"
#include "volume/ec_volume.h"

namespace swrdma {
namespace {

namespace fs = std::filesystem;
using agent::EcExport;
using agent::EcLocated;
using agent::EcLookupAnswer;

class FakeRegistration final : public rdma::Registration {
 public:
  explicit FakeRegistration(void* at, int* live) : Registration(at), live_(live) { ++*live_; }
  ~FakeRegistration() override { --*live_; }
  Result<std::vector<uint8_t>> PackKey() const override { return std::vector<uint8_t>{1, 2, 3, 4}; }

 private:
  int* live_;
};

// Records what it registers; refuses the `fail_at`-th registration (0: none).
class RecordingRegistrar final : public rdma::Registrar {
 public:
  struct Made {
    const void* address;
    size_t length;
    rdma::RegionAccess access;
  };
  Result<std::unique_ptr<rdma::Registration>> Register(void* address, size_t length,
                                                       rdma::RegionAccess access) const override {
    if (++calls == fail_at) return Error(Code::kIOError, "ibv_reg_mr: Bad address (EFAULT)");
    made.push_back({address, length, access});
    return std::unique_ptr<rdma::Registration>(new FakeRegistration(address, &live));
  }
  mutable std::vector<Made> made;
  mutable int calls = 0;
  mutable int live = 0;
  int fail_at = 0;
};

struct Encoded {
  testing::TempDir tmp;
  testing::ExpectedNeedles expected;
  std::vector<uint8_t> dat;
  ec::EcVolumeFiles files;
};

// Volume 7 (needles up to 300 KiB, past one 1 MiB block per shard: many records cross a shard
// boundary), encoded as ec.encode does; the source `.dat` kept to compare with.
void Encode(Encoded& e) {
  fs::create_directories(e.tmp / "src");
  fs::create_directories(e.tmp / "vols");
  GenerateOptions o;
  o.dir = e.tmp / "src";
  o.volume_id = 7;
  o.needles = 60;
  o.min_size = 1;
  o.max_size = 300 * 1024;
  o.gzip_fraction = 0.2;
  o.delete_fraction = 0.1;
  o.seed = 77;
  testing::GenerateExpected(o, e.expected);
  ASSERT_FALSE(e.expected.empty());
  ASSERT_TRUE(
      ec::EncodeEcVolume(e.tmp / "src/7.dat", e.tmp / "src/7.idx", e.tmp / "vols", "7", {}).ok());
  std::ifstream in(e.tmp / "src/7.dat", std::ios::binary);
  e.dat.assign(std::istreambuf_iterator<char>(in), {});
  auto found = ec::DiscoverEcVolumes(e.tmp / "vols");
  ASSERT_TRUE(found) << found.error().ToString();
  ASSERT_EQ(found->volumes.size(), 1u);
  e.files = found->volumes[0];
}

// Follows every live needle's READs in this process: each inside a registered shard, together
// the record's bytes. Returns how many needles had READs and how many crossed a shard boundary.
struct Followed {
  size_t with_reads = 0, multi = 0, without = 0;
};
Followed FollowReads(const Encoded& e, const EcExport& x) {
  Followed f;
  const auto regions = x.remote_regions();
  for (const auto& [fid, n] : e.expected) {
    if (n.deleted) continue;
    auto parsed = ParseFileId(fid);
    EXPECT_TRUE(parsed);
    const EcLocated where = x.Locate(*parsed);
    EXPECT_EQ(where.status, LookupStatus::kOk) << fid;
    const LookupResult answer = EcLookupAnswer(fid, x, where);
    EXPECT_TRUE(answer.ec);
    if (answer.ec_intervals.empty()) {
      ++f.without;
      continue;
    }
    ++f.with_reads;
    if (answer.ec_intervals.size() > 1) ++f.multi;
    std::vector<uint8_t> record;
    for (const EcInterval& r : answer.ec_intervals) {
      const EcShardRegion* region = nullptr;
      for (const EcShardRegion& g : regions) {
        if (g.shard == r.shard) region = &g;
      }
      const bool inside =
          region != nullptr && r.offset <= region->length && r.length <= region->length - r.offset;
      EXPECT_TRUE(inside) << fid << ": an interval outside every registered shard";
      if (!inside) return f;
      const auto* p = reinterpret_cast<const uint8_t*>(region->address + r.offset);
      record.insert(record.end(), p, p + r.length);
    }
    EXPECT_EQ(record.size(), where.length) << fid;
    EXPECT_TRUE(std::equal(record.begin(), record.end(),
                           e.dat.begin() + static_cast<ptrdiff_t>(where.dat_offset)))
        << fid << ": the READs do not make the needle's record";
  }
  return f;
}

TEST(EcRemote, EveryShardRegisteredReadOnlyAndTheReadsMakeEachRecord) {
  Encoded e;
  ASSERT_NO_FATAL_FAILURE(Encode(e));
  RecordingRegistrar reg;
  rdma::PinBudget budget(rdma::PinBudget::kUnlimited);
  {
    auto x = EcExport::Open(e.files, 1, OffsetWidth::k4, {&reg, &budget, false});
    ASSERT_TRUE(x) << x.error().ToString();
    EXPECT_TRUE((*x)->remote());
    EXPECT_EQ((*x)->remote_note(), "");
    ASSERT_EQ(reg.made.size(), e.files.shards.size()) << "one registration per shard file";
    uint64_t total = 0;
    for (const auto& m : reg.made) {
      EXPECT_EQ(m.access, rdma::RegionAccess::kRemoteRead) << "exports are never remotely writable";
      total += m.length;
    }
    EXPECT_EQ((*x)->remote_registered_bytes(), total);
    EXPECT_EQ((*x)->remote_unregistered_bytes(), 0u);
    EXPECT_EQ(budget.used(), total);
    EXPECT_EQ((*x)->remote_regions().size(), e.files.shards.size());
    const Followed f = FollowReads(e, **x);
    EXPECT_EQ(f.without, 0u);
    EXPECT_GT(f.with_reads, 0u);
    EXPECT_GT(f.multi, 0u) << "no needle crosses a shard boundary: the test lost its point";
  }
  EXPECT_EQ(reg.live, 0) << "registrations outlived the export";
  EXPECT_EQ(budget.used(), 0u) << "the pin reservation outlived the export";
}

TEST(EcRemote, PastThePinBudgetNothingIsRegisteredAndReadsAreChecked) {
  Encoded e;
  ASSERT_NO_FATAL_FAILURE(Encode(e));
  RecordingRegistrar reg;
  rdma::PinBudget budget(4096);
  auto x = EcExport::Open(e.files, 1, OffsetWidth::k4, {&reg, &budget, false});
  ASSERT_TRUE(x) << x.error().ToString();
  EXPECT_TRUE(reg.made.empty());
  EXPECT_TRUE((*x)->remote_regions().empty());
  EXPECT_NE((*x)->remote_note().find("--max-pinned-bytes"), std::string::npos)
      << (*x)->remote_note();
  EXPECT_GT((*x)->remote_unregistered_bytes(), 0u);
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_EQ(budget.refusals(), 1u);
  const Followed f = FollowReads(e, **x);
  EXPECT_EQ(f.with_reads, 0u);
  EXPECT_GT(f.without, 0u);
}

TEST(EcRemote, ARefusedRegistrationLeavesNoneAndGivesTheBudgetBack) {
  Encoded e;
  ASSERT_NO_FATAL_FAILURE(Encode(e));
  RecordingRegistrar reg;
  reg.fail_at = 3;
  rdma::PinBudget budget(rdma::PinBudget::kUnlimited);
  auto x = EcExport::Open(e.files, 1, OffsetWidth::k4, {&reg, &budget, false});
  ASSERT_TRUE(x) << x.error().ToString() << ": a refused registration is no error";
  EXPECT_EQ(reg.live, 0) << "the two registrations made before the refusal were kept";
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_NE((*x)->remote_note().find("EFAULT"), std::string::npos) << (*x)->remote_note();
  EXPECT_TRUE((*x)->remote_regions().empty());
  EXPECT_EQ(FollowReads(e, **x).with_reads, 0u);
}

// A data shard lost (eleven held: its pieces are rebuilt from parity by the agent): needles
// with a piece there are read checked, all others one-sidedly.
TEST(EcRemote, PiecesRebuiltFromParityAreNeverOfferedAsReads) {
  Encoded e;
  ASSERT_NO_FATAL_FAILURE(Encode(e));
  ASSERT_TRUE(e.files.shards.contains(1));
  fs::remove(e.files.shards[1]);
  e.files.shards.erase(1);
  RecordingRegistrar reg;
  auto x = EcExport::Open(e.files, 1, OffsetWidth::k4, {&reg, nullptr, false});
  ASSERT_TRUE(x) << x.error().ToString();
  ASSERT_TRUE((*x)->can_rebuild());
  size_t in_lost = 0;
  for (const auto& [fid, n] : e.expected) {
    if (n.deleted) continue;
    const EcLocated where = (*x)->Locate(*ParseFileId(fid));
    const bool rebuilt = !where.rebuilt_shards.empty();
    in_lost += rebuilt ? 1 : 0;
    EXPECT_EQ((*x)->RemoteIntervals(where).empty(), rebuilt) << fid;
  }
  EXPECT_GT(in_lost, 0u) << "no needle in shard 1: the test lost its point";
  const Followed f = FollowReads(e, **x);
  EXPECT_EQ(f.without, in_lost);
}

TEST(EcRemote, WithoutARegistrarNothingChanges) {
  Encoded e;
  ASSERT_NO_FATAL_FAILURE(Encode(e));
  auto x = EcExport::Open(e.files, 1, OffsetWidth::k4);
  ASSERT_TRUE(x) << x.error().ToString();
  EXPECT_FALSE((*x)->remote());
  EXPECT_EQ((*x)->remote_unregistered_bytes(), 0u);
  EXPECT_EQ(FollowReads(e, **x).with_reads, 0u);
}

// The key exchange: in region exposure /v1/volumes/7 hands out every registered shard and a
// lookup the READs of each needle; in checked exposure neither leaves the agent.
TEST(EcRemote, TheKeyExchangeHandsOutShardKeysAndReadsOnlyInRegionExposure) {
  Encoded e;
  ASSERT_NO_FATAL_FAILURE(Encode(e));
  RecordingRegistrar reg;
  auto context = rdma::UcxContext::Create({});
  ASSERT_TRUE(context) << context.error().ToString();
  auto index = NeedleIndex::Open(e.tmp / "index");
  ASSERT_TRUE(index) << index.error().ToString();
  agent::VolumeSetOptions vo;
  vo.dirs = {e.tmp / "vols"};
  vo.remote = &reg;
  agent::VolumeSet volumes(**index, *context, vo);
  ASSERT_EQ(volumes.Scan().ec_volumes, 1u);
  std::vector<std::string> live;
  for (const auto& [fid, n] : e.expected) {
    if (!n.deleted) live.push_back(fid);
  }
  for (const std::string exposure : {"region", "checked"}) {
    SCOPED_TRACE(exposure);
    agent::ServiceOptions so;
    so.agent_version = "test";
    so.exposure = exposure;
    agent::AgentService service(volumes, so);
    agent::HttpRequest r;
    r.method = "GET";
    r.target = "/v1/volumes/7";
    r.headers = {{"Accept", "application/json"}};
    agent::HttpResponse resp = service.Handle(r);
    ASSERT_EQ(resp.status, 200) << resp.body;
    auto desc = VolumeDescriptorFromJson(*DecodeBody(resp.body, WireFormat::kJson));
    ASSERT_TRUE(desc) << desc.error().ToString();
    EXPECT_TRUE(desc->ec);
    EXPECT_EQ(desc->ec_regions.size(), exposure == "region" ? e.files.shards.size() : 0u);

    r.method = "POST";
    r.target = "/v1/lookup";
    r.headers = {{"Accept", "application/json"}, {"Content-Type", "application/json"}};
    r.body = ToJson(LookupRequest{live, {}}).dump();
    resp = service.Handle(r);
    ASSERT_EQ(resp.status, 200) << resp.body;
    auto answers = LookupResponseFromJson(*DecodeBody(resp.body, WireFormat::kJson));
    ASSERT_TRUE(answers) << answers.error().ToString();
    size_t with_reads = 0;
    for (const LookupResult& a : answers->results) {
      EXPECT_EQ(a.status, LookupStatus::kOk) << a.fid << ": " << a.error;
      EXPECT_TRUE(a.ec);
      with_reads += a.ec_intervals.empty() ? 0 : 1;
    }
    EXPECT_EQ(with_reads, exposure == "region" ? live.size() : 0u);
  }
}

}  // namespace
}  // namespace swrdma
