// The agent's remote (verbs) registrations of its exports, without an RDMA device: a recording
// Registrar stands in for the verbs one (rdma/verbs/registrar.h; the real one runs in the
// Soft-RoCE VM, tests/vm). What is checked here is the bookkeeping a NIC then enforces: every
// served byte is under a key before a lookup can name it, keys follow appends in extents, a
// failed registration never publishes bytes no key covers, too many extents re-export the
// volume, and /v1/volumes hands out exactly those keys.
#include <atomic>
#include <cstring>
#include <optional>
#include <string_view>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "agent/agent_service.h"
#include "agent/volume_set.h"
#include "index/needle_index.h"
#include "protocol/file_id.h"
#include "protocol/wire.h"
#include "rdma/pin_budget.h"
#include "tests/test_util.h"
#include "volume/volume_writer.h"

namespace swrdma::agent {
namespace {

namespace fs = std::filesystem;

struct Recorded {
  const void* address;
  size_t length;
  rdma::RegionAccess access;
  uint32_t key;
};

// Records what would be registered; each registration's key is a counter. `fail` makes the
// next registrations fail (as ibv_reg_mr does past the locked-memory limit).
class RecordingRegistrar final : public rdma::Registrar {
 public:
  class Registration final : public rdma::Registration {
   public:
    Registration(RecordingRegistrar* owner, uint32_t key)
        : rdma::Registration(nullptr), owner_(owner), key_(key) {}
    ~Registration() override { ++owner_->released; }
    Result<std::vector<uint8_t>> PackKey() const override {
      return std::vector<uint8_t>{static_cast<uint8_t>(key_), static_cast<uint8_t>(key_ >> 8),
                                  static_cast<uint8_t>(key_ >> 16),
                                  static_cast<uint8_t>(key_ >> 24)};
    }

   private:
    RecordingRegistrar* owner_;
    uint32_t key_;
  };

  Result<std::unique_ptr<rdma::Registration>> Register(void* address, size_t length,
                                                       rdma::RegionAccess access) const override {
    if (fail) return Error(Code::kResourceExhausted, "ibv_reg_mr: locked-memory limit (test)");
    const uint32_t key = ++next_key;
    log.push_back({address, length, access, key});
    return std::unique_ptr<rdma::Registration>(
        new Registration(const_cast<RecordingRegistrar*>(this), key));
  }

  bool PinsMemory() const override { return pins; }

  bool fail = false;
  bool pins = true;  // false: a device that pages on demand (verbs ODP)
  mutable uint32_t next_key = 0x1000;
  mutable std::vector<Recorded> log;
  std::atomic<int> released{0};
};

class RemoteExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(tmp_ / "vols");
    VolumeWriterOptions wo;
    wo.dir = tmp_ / "vols";
    wo.volume_id = 7;
    auto writer = VolumeWriter::Create(wo);
    ASSERT_TRUE(writer.has_value()) << writer.error().ToString();
    writer_.emplace(std::move(*writer));
    Append(20);
    context_.emplace(std::move(*rdma::UcxContext::Create({})));
    index_ = std::move(*NeedleIndex::Open(tmp_ / "index"));
    VolumeSetOptions vo;
    vo.dirs = {tmp_ / "vols"};
    vo.remote = &registrar_;
    vo.retire_grace = std::chrono::milliseconds(0);
    volumes_ = std::make_unique<VolumeSet>(*index_, *context_, vo);
    ASSERT_EQ(volumes_->Scan().exported, 1u);
  }

  // Appends `n` needles of 3000 bytes; their fids go to fids_.
  void Append(int n) {
    for (int i = 0; i < n; ++i) {
      const uint64_t id = ++next_id_;
      std::vector<uint8_t> data(3000, static_cast<uint8_t>(id));
      NeedleSpec spec;
      spec.id = id;
      spec.cookie = 0x1234;
      spec.data = data;
      ASSERT_TRUE(writer_->Append(spec).has_value());
      fids_.push_back(FormatFileId({7, id, 0x1234}));
    }
    ASSERT_TRUE(writer_->Sync().ok());
  }

  std::shared_ptr<const ExportedVolume> Exported() {
    auto map = volumes_->snapshot();
    auto it = map->volumes.find(7);
    return it == map->volumes.end() ? nullptr : it->second.exported;
  }

  // Every live fid's record lies inside one remote region of the volume's generation.
  void ExpectEveryRecordUnderAKey() {
    auto exp = Exported();
    ASSERT_TRUE(exp);
    const auto regions = exp->remote_regions();
    ASSERT_FALSE(regions.empty());
    LookupRequest req;
    req.fids = fids_;
    const LookupResponse resp = volumes_->Lookup(req);
    ASSERT_EQ(resp.results.size(), fids_.size());
    for (const LookupResult& r : resp.results) {
      ASSERT_EQ(r.status, LookupStatus::kOk) << r.fid << ": " << r.error;
      EXPECT_EQ(r.generation, exp->generation());
      bool covered = false;
      for (const auto& g : regions) {
        covered |= r.address >= g.address && r.address + r.length <= g.address + g.length;
      }
      EXPECT_TRUE(covered) << r.fid << " at " << r.address << " is under no key";
    }
  }

  testing::TempDir tmp_;
  RecordingRegistrar registrar_;
  std::optional<VolumeWriter> writer_;
  std::optional<rdma::UcxContext> context_;
  std::unique_ptr<NeedleIndex> index_;
  std::unique_ptr<VolumeSet> volumes_;
  std::vector<std::string> fids_;
  uint64_t next_id_ = 0;
};

TEST_F(RemoteExportTest, TheWholeFileIsRegisteredReadOnlyAtExport) {
  auto exp = Exported();
  ASSERT_TRUE(exp);
  ASSERT_EQ(registrar_.log.size(), 1u);
  const Recorded& r = registrar_.log[0];
  EXPECT_EQ(r.access, rdma::RegionAccess::kRemoteRead) << "an export is never remotely writable";
  EXPECT_EQ(r.address, exp->bytes().data());
  EXPECT_EQ(r.length, writer_->dat_size()) << "the file, not the growth reserve past its end";
  const auto regions = exp->remote_regions();
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].file_offset, 0u);
  EXPECT_EQ(regions[0].address, exp->base_address());
  EXPECT_EQ(regions[0].length, writer_->dat_size());
  EXPECT_EQ(regions[0].rkey, (std::vector<uint8_t>{0x01, 0x10, 0, 0}));
  ExpectEveryRecordUnderAKey();
}

TEST_F(RemoteExportTest, AppendsAreRegisteredAsNewExtentsBeforeTheyAreServed) {
  const uint64_t first = writer_->dat_size();
  const uint64_t generation = Exported()->generation();
  Append(5);
  volumes_->Scan();
  auto exp = Exported();
  EXPECT_EQ(exp->generation(), generation) << "a grown file is served in place";
  const auto regions = exp->remote_regions();
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[1].file_offset, first);
  EXPECT_EQ(regions[1].address, exp->base_address() + first);
  EXPECT_EQ(regions[1].length, writer_->dat_size() - first);
  EXPECT_EQ(exp->size(), writer_->dat_size());
  ExpectEveryRecordUnderAKey();
}

// Reports from Scan() that mention `what`.
size_t Mentions(const ScanReport& report, std::string_view what) {
  size_t n = 0;
  for (const auto& m : report.messages)
    n += m.find(what) != std::string::npos;
  return n;
}

TEST_F(RemoteExportTest, AFailedRegistrationServesItsBytesAsCheckedReadsOnly) {
  const uint64_t before = writer_->dat_size();
  const size_t old_count = fids_.size();
  Append(3);
  registrar_.fail = true;
  EXPECT_EQ(Mentions(volumes_->Scan(), "locked-memory limit"), 1u)
      << "the scan report must name the failed registration";
  EXPECT_EQ(Mentions(volumes_->Scan(), "locked-memory limit"), 0u)
      << "said once, not at every scan while it keeps failing";
  auto exp = Exported();
  EXPECT_EQ(exp->size(), writer_->dat_size()) << "the new needles are served";
  EXPECT_EQ(exp->remote_covered(), before) << "but no key covers them";
  LookupRequest req;
  req.fids = {fids_[old_count - 1], fids_.back()};
  const auto results = volumes_->Lookup(req).results;
  ASSERT_EQ(results[0].status, LookupStatus::kOk);
  EXPECT_FALSE(results[0].checked) << "a needle under a key is read one-sided";
  ASSERT_EQ(results[1].status, LookupStatus::kOk) << results[1].error;
  EXPECT_TRUE(results[1].checked) << "a needle past the registered bytes must be read checked";
  // Healed: the next scan registers the tail, and its needles are read one-sided again.
  registrar_.fail = false;
  volumes_->Scan();
  EXPECT_EQ(Exported()->remote_covered(), writer_->dat_size());
  EXPECT_FALSE(volumes_->Lookup(req).results[1].checked);
  ExpectEveryRecordUnderAKey();
}

// A volume set like the fixture's, over a second volume too, with a pin budget of `limit`.
class PinBudgetTest : public RemoteExportTest {
 protected:
  void Rebuild(uint64_t limit, HotFirstOptions hot_first = {}) {
    volumes_.reset();
    budget_.emplace(limit);
    VolumeSetOptions vo;
    vo.hot_first = hot_first;
    vo.dirs = {tmp_ / "vols"};
    vo.remote = &registrar_;
    vo.pin_budget = &*budget_;
    vo.retire_grace = std::chrono::milliseconds(0);
    volumes_ = std::make_unique<VolumeSet>(*index_, *context_, vo);
    volumes_->Scan();
  }
  // `rounds` reads of every fid of `fids`, as the agent sees them (each adds to the heat).
  void ReadRounds(const std::vector<std::string>& fids, int rounds) {
    for (int round = 0; round < rounds; ++round) {
      for (const auto& fid : fids)
        ASSERT_EQ(volumes_->Resolve(fid).result.status, LookupStatus::kOk) << fid;
    }
  }
  // Every fid of `fids` answered ok, and how many of them "checked".
  size_t CheckedAnswers(const std::vector<std::string>& fids) {
    LookupRequest req;
    req.fids = fids;
    size_t checked = 0;
    for (const LookupResult& r : volumes_->Lookup(req).results) {
      EXPECT_EQ(r.status, LookupStatus::kOk) << r.fid << ": " << r.error;
      checked += r.checked;
    }
    return checked;
  }
  std::optional<rdma::PinBudget> budget_;  // after volumes_ in destruction order: declared last
};

TEST_F(PinBudgetTest, AVolumePastTheBudgetIsServedByCheckedReadsUntilThereIsRoom) {
  // Volume 8, bigger than the budget left once volume 7 is registered.
  VolumeWriterOptions wo;
  wo.dir = tmp_ / "vols";
  wo.volume_id = 8;
  auto writer = VolumeWriter::Create(wo);
  ASSERT_TRUE(writer.has_value());
  std::vector<std::string> fids8;
  for (uint64_t id = 1; id <= 30; ++id) {  // 1.5 times volume 7's 20 needles
    std::vector<uint8_t> data(3000, static_cast<uint8_t>(id));
    NeedleSpec spec;
    spec.id = id;
    spec.cookie = 0x99;
    spec.data = data;
    ASSERT_TRUE(writer->Append(spec).has_value());
    fids8.push_back(FormatFileId({8, id, 0x99}));
  }
  ASSERT_TRUE(writer->Sync().ok());
  const uint64_t size7 = writer_->dat_size();
  const uint64_t size8 = writer->dat_size();
  ASSERT_GT(size8, size7);
  ASSERT_LT(size8, 2 * size7);
  Rebuild(size7 + size8 / 2);  // room for 7 (scanned first) and half of 8, or for 8 alone
  auto map = volumes_->snapshot();
  ASSERT_EQ(map->volumes.size(), 2u);
  const auto& e7 = *map->volumes.at(7).exported;
  const auto& e8 = *map->volumes.at(8).exported;
  EXPECT_EQ(e7.remote_covered(), size7);
  EXPECT_EQ(e8.remote_covered(), 0u) << "all or nothing per range: 8 does not fit";
  EXPECT_TRUE(e8.remote_regions().empty()) << "no key for a volume that is not registered";
  EXPECT_EQ(budget_->used(), size7);
  EXPECT_GE(budget_->refusals(), 1u);
  EXPECT_EQ(CheckedAnswers(fids_), 0u) << "volume 7 is read one-sided";
  EXPECT_EQ(CheckedAnswers(fids8), fids8.size()) << "volume 8 is read checked, never refused";
  // Volume 7 goes (deleted by the volume server): its pages are unpinned and 8 gets them. (A
  // snapshot keeps its exports, and their registrations, alive: this one is dropped first.)
  map.reset();
  fs::remove(tmp_ / "vols" / "7.dat");
  fs::remove(tmp_ / "vols" / "7.idx");
  // 7 is retired by the first scan (grace 0) and released by the next; 8 registered then.
  for (int i = 0; i < 3 && budget_->used() != size8; ++i)
    volumes_->Scan();
  map = volumes_->snapshot();
  ASSERT_EQ(map->volumes.count(7), 0u);
  EXPECT_EQ(map->volumes.at(8).exported->remote_covered(), size8);
  EXPECT_EQ(budget_->used(), size8);
  EXPECT_EQ(CheckedAnswers(fids8), 0u) << "registered now: read one-sided";
}

// Volume 8 of `needles` 3000-byte needles beside the fixture's volume 7; its fids.
std::vector<std::string> WriteVolume8(const fs::path& dir, uint64_t needles) {
  VolumeWriterOptions wo;
  wo.dir = dir;
  wo.volume_id = 8;
  auto writer = VolumeWriter::Create(wo);
  EXPECT_TRUE(writer.has_value());
  std::vector<std::string> fids;
  if (!writer) return fids;
  for (uint64_t id = 1; id <= needles; ++id) {
    std::vector<uint8_t> data(3000, static_cast<uint8_t>(id));
    NeedleSpec spec;
    spec.id = id;
    spec.cookie = 0x99;
    spec.data = data;
    EXPECT_TRUE(writer->Append(spec).has_value());
    fids.push_back(FormatFileId({8, id, 0x99}));
  }
  EXPECT_TRUE(writer->Sync().ok());
  return fids;
}

// Room for one of two volumes: the one the agent reads for is registered in place of the cold
// one, which is then read checked; the swap is kept for the dwell time even when the load turns.
TEST_F(PinBudgetTest, TheHotterVolumeIsRegisteredInPlaceOfAColdOne) {
  const std::vector<std::string> fids8 = WriteVolume8(tmp_ / "vols", 10);
  const uint64_t size7 = writer_->dat_size();
  const uint64_t size8 = fs::file_size(tmp_ / "vols" / "8.dat");
  ASSERT_LT(size8, size7);
  HotFirstOptions hot;
  hot.min_dwell = std::chrono::hours(1);
  hot.warmup = std::chrono::milliseconds(0);
  Rebuild(size7 + size8 / 2, hot);  // one or the other; 7 first (scan order)
  auto e7 = volumes_->snapshot()->volumes.at(7).exported;
  auto e8 = volumes_->snapshot()->volumes.at(8).exported;
  ASSERT_EQ(e7->remote_covered(), size7);
  ASSERT_EQ(e8->remote_covered(), 0u);
  const int released_before = registrar_.released.load();

  volumes_->Scan();  // no reads yet: nothing moves
  EXPECT_EQ(e7->remote_covered(), size7);
  EXPECT_EQ(volumes_->hot_first().swaps(), 0u);
  ReadRounds(fids8, 3);
  volumes_->Scan();
  EXPECT_EQ(volumes_->hot_first().swaps(), 1u);
  EXPECT_EQ(e8->remote_covered(), size8) << "the hot volume is registered";
  EXPECT_EQ(e7->remote_covered(), 0u) << "the cold one made room";
  EXPECT_TRUE(e7->remote_regions().empty()) << "no key handed out for a dropped volume";
  EXPECT_EQ(registrar_.released.load(), released_before + 1) << "volume 7's MR deregistered";
  EXPECT_EQ(budget_->used(), size8);
  EXPECT_EQ(CheckedAnswers(fids_), fids_.size()) << "volume 7 is read checked now";
  EXPECT_EQ(CheckedAnswers(fids8), 0u) << "volume 8 one-sided";

  // The load turns to volume 7: within the dwell time nothing moves back.
  ReadRounds(fids_, 5);
  volumes_->Scan();
  EXPECT_EQ(volumes_->hot_first().swaps(), 1u);
  EXPECT_EQ(e8->remote_covered(), size8);
  EXPECT_EQ(e7->remote_covered(), 0u);
}

// Volumes just started are not dropped before their heat was measured for the warm-up: a pass
// reading every volume once, in turn, must not move the room to whichever was read first.
TEST_F(PinBudgetTest, NothingIsDroppedDuringTheWarmup) {
  const std::vector<std::string> fids8 = WriteVolume8(tmp_ / "vols", 10);
  const uint64_t size7 = writer_->dat_size();
  const uint64_t size8 = fs::file_size(tmp_ / "vols" / "8.dat");
  HotFirstOptions hot;
  hot.min_dwell = std::chrono::milliseconds(0);
  hot.warmup = std::chrono::hours(1);
  Rebuild(size7 + size8 / 2, hot);
  auto e7 = volumes_->snapshot()->volumes.at(7).exported;
  auto e8 = volumes_->snapshot()->volumes.at(8).exported;
  for (int round = 0; round < 10; ++round) {
    ReadRounds(fids8, 1);
    volumes_->Scan();
  }
  EXPECT_EQ(volumes_->hot_first().swaps(), 0u);
  EXPECT_EQ(e7->remote_covered(), size7) << "registered at start, kept through the warm-up";
  EXPECT_EQ(e8->remote_covered(), 0u);
}

// Similar loads (within the hysteresis) never swap, and with a dwell of zero a clearly hotter
// volume takes the room back.
TEST_F(PinBudgetTest, SimilarLoadsDoNotSwap) {
  const std::vector<std::string> fids8 = WriteVolume8(tmp_ / "vols", 10);
  const uint64_t size7 = writer_->dat_size();
  const uint64_t size8 = fs::file_size(tmp_ / "vols" / "8.dat");
  HotFirstOptions hot;
  hot.min_dwell = std::chrono::milliseconds(0);
  hot.warmup = std::chrono::milliseconds(0);
  Rebuild(size7 + size8 / 2, hot);
  auto e7 = volumes_->snapshot()->volumes.at(7).exported;
  auto e8 = volumes_->snapshot()->volumes.at(8).exported;
  // 20 reads of 7, 30 of 8: 8 is hotter but not twice as hot.
  ReadRounds(fids_, 1);
  ReadRounds(fids8, 3);
  volumes_->Scan();
  EXPECT_EQ(volumes_->hot_first().swaps(), 0u);
  EXPECT_EQ(e7->remote_covered(), size7);
  // Volume 8 alone now: it takes the room.
  ReadRounds(fids8, 5);
  volumes_->Scan();
  EXPECT_EQ(volumes_->hot_first().swaps(), 1u);
  EXPECT_EQ(e8->remote_covered(), size8);
  // And back, with no dwell, once 7 is clearly the hotter one.
  ReadRounds(fids_, 10);
  volumes_->Scan();
  EXPECT_EQ(volumes_->hot_first().swaps(), 2u);
  EXPECT_EQ(e7->remote_covered(), size7);
  EXPECT_EQ(e8->remote_covered(), 0u);
  EXPECT_LE(budget_->used(), budget_->limit());
}

TEST_F(PinBudgetTest, AppendsPastTheBudgetAreReadCheckedAndTheRestStaysOneSided) {
  const size_t old_count = fids_.size();
  Rebuild(writer_->dat_size() + 4096);  // room for the file and one 3000-byte needle
  Append(1);
  volumes_->Scan();
  EXPECT_EQ(Exported()->remote_covered(), writer_->dat_size()) << "the first append fits";
  Append(4);
  volumes_->Scan();
  EXPECT_EQ(CheckedAnswers({fids_.begin(), fids_.begin() + old_count + 1}), 0u);
  EXPECT_EQ(CheckedAnswers({fids_.begin() + old_count + 1, fids_.end()}), 4u);
  EXPECT_LE(budget_->used(), budget_->limit());
  // The volume goes: every reservation is given back with its registration.
  volumes_.reset();
  EXPECT_EQ(budget_->used(), 0u);
  EXPECT_EQ(registrar_.released.load(), static_cast<int>(registrar_.log.size()));
}

// On-demand paging (a registrar whose registrations pin nothing): the budget does not apply,
// even a zero one; every record is read one-sided and nothing is held against the budget.
TEST_F(PinBudgetTest, RegistrationsThatPinNothingIgnoreTheBudget) {
  registrar_.pins = false;
  Rebuild(0);
  EXPECT_EQ(Exported()->remote_covered(), writer_->dat_size());
  EXPECT_EQ(CheckedAnswers(fids_), 0u);
  Append(3);
  volumes_->Scan();
  EXPECT_EQ(Exported()->remote_covered(), writer_->dat_size()) << "appends registered too";
  EXPECT_EQ(CheckedAnswers(fids_), 0u);
  EXPECT_EQ(budget_->used(), 0u);
  EXPECT_EQ(budget_->refusals(), 0u);
}

TEST_F(PinBudgetTest, ZeroPinsNothingAndEveryReadIsChecked) {
  Rebuild(0);
  EXPECT_TRUE(Exported()->remote_regions().empty());
  EXPECT_EQ(CheckedAnswers(fids_), fids_.size());
  EXPECT_EQ(budget_->used(), 0u);
}

TEST_F(RemoteExportTest, TooManyExtentsExportTheVolumeAgainInOne) {
  const uint64_t generation = Exported()->generation();
  // The default allows 32 extents: the 32nd append scan makes 32, the next one re-exports.
  for (int i = 0; i < 32; ++i) {
    Append(1);
    volumes_->Scan();
  }
  auto exp = Exported();
  EXPECT_NE(exp->generation(), generation) << "past the extent limit the volume is re-exported";
  EXPECT_EQ(exp->remote_regions().size(), 1u);
  EXPECT_EQ(exp->remote_regions()[0].length, writer_->dat_size());
  ExpectEveryRecordUnderAKey();
}

TEST_F(RemoteExportTest, RetiredGenerationsReleaseTheirKeys) {
  for (int i = 0; i < 33; ++i) {
    Append(1);
    volumes_->Scan();
  }
  // Grace 0: the replaced export is gone after the next scan; its 32 registrations with it.
  volumes_->Scan();
  EXPECT_GE(registrar_.released.load(), 32);
  volumes_.reset();
  EXPECT_EQ(registrar_.released.load(), static_cast<int>(registrar_.log.size()))
      << "every registration goes with its export";
}

TEST_F(RemoteExportTest, TheKeyExchangeHandsOutTheRemoteKeys) {
  ServiceOptions so;
  so.agent_version = "test";
  so.exposure = "region";
  so.exposures = {{"verbs", "region"}};
  so.transports = {"verbs"};
  so.verbs_info = [] { return nlohmann::json{{"port", 18517}, {"device", "rxe0"}}; };
  AgentService service(*volumes_, so);
  HttpRequest r;
  r.method = "GET";
  r.target = "/v1/volumes/7";
  r.headers = {{"Accept", "application/json"}};
  HttpResponse resp = service.Handle(r);
  ASSERT_EQ(resp.status, 200) << resp.body;
  auto j = DecodeBody(resp.body, WireFormat::kJson);
  ASSERT_TRUE(j.has_value());
  auto desc = VolumeDescriptorFromJson(*j);
  ASSERT_TRUE(desc.has_value()) << desc.error().ToString();
  const auto regions = Exported()->remote_regions();
  ASSERT_EQ(desc->regions.size(), regions.size());
  EXPECT_EQ(desc->regions[0].rkey, regions[0].rkey);
  EXPECT_EQ(desc->regions[0].address, regions[0].address);
  r.target = "/v1/info";
  resp = service.Handle(r);
  ASSERT_EQ(resp.status, 200);
  j = DecodeBody(resp.body, WireFormat::kJson);
  ASSERT_TRUE(j.has_value());
  EXPECT_EQ((*j)["verbs"]["port"], 18517);
  EXPECT_EQ((*j)["exposures"]["verbs"], "region");
}

}  // namespace
}  // namespace swrdma::agent
