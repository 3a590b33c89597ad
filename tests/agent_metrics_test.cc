// The agent's operational signals: the Prometheus series fed by volume scans, the HTTP server and
// the device monitor; request ids; the optional lookup timing; RDMA hot-plug change lines.
#include "agent/agent_metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <regex>

#include <gtest/gtest.h>

#include "agent/agent_service.h"
#include "agent/device_monitor.h"
#include "agent/volume_set.h"
#include "http/http_util.h"
#include "index/needle_index.h"
#include "protocol/file_id.h"
#include "protocol/wire.h"
#include "rdma/pin_budget.h"
#include "tests/test_util.h"
#include "volume/ec_volume.h"
#include "volume/volume_generator.h"

namespace swrdma::agent {
namespace {

namespace fs = std::filesystem;

// The value of the series `name` (with labels, exactly as rendered), or -1 when absent.
double Series(const std::string& text, const std::string& name) {
  size_t pos = 0;
  while ((pos = text.find(name + " ", pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') return std::stod(text.substr(pos + name.size() + 1));
    pos += name.size();
  }
  return -1;
}

GenerateReport Generate(const fs::path& dir, uint32_t vid, uint64_t needles, uint64_t seed) {
  fs::create_directories(dir);
  GenerateOptions o;
  o.dir = dir;
  o.volume_id = vid;
  o.needles = needles;
  o.min_size = 100;
  o.max_size = 900;
  o.delete_fraction = 0.2;
  o.seed = seed;
  auto r = GenerateVolume(o, {});
  EXPECT_TRUE(r) << r.error().ToString();
  return *r;
}

class AgentMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    context_.emplace(std::move(*rdma::UcxContext::Create({})));
    index_ = std::move(*NeedleIndex::Open(tmp_ / "index"));
    VolumeSetOptions vo;
    vo.dirs = {tmp_ / "vols"};
    vo.retire_grace = std::chrono::milliseconds(0);
    fs::create_directories(tmp_ / "vols");
    volumes_ = std::make_unique<VolumeSet>(*index_, *context_, vo);
  }
  std::string Render() { return metrics_.Render(*volumes_->snapshot()); }

  testing::TempDir tmp_;
  std::optional<rdma::UcxContext> context_;
  std::unique_ptr<NeedleIndex> index_;
  std::unique_ptr<VolumeSet> volumes_;
  AgentMetrics metrics_;
};

// weed writes an EC volume's .ecx, then its shards row by row, then its .vif: shards newer than
// the .vif are still being written, and the volume is served only once its files stop changing
// (served earlier, the rows not yet written read as zeros: seen in seaweedfs_e2e).
TEST_F(AgentMetricsTest, EcVolumesBeingWrittenAreServedOnceTheirFilesSettle) {
  const auto gen = Generate(tmp_ / "src", 9, 40, 3);
  ASSERT_TRUE(ec::EncodeEcVolume(gen.dat, gen.idx, tmp_ / "vols", "9", {}).ok());
  const auto vif_time = fs::last_write_time(tmp_ / "vols/9.vif");
  fs::last_write_time(tmp_ / "vols/9.ec03", vif_time + std::chrono::seconds(2));
  ScanReport r = volumes_->Scan();
  EXPECT_EQ(volumes_->snapshot()->ec.count(9), 0u) << "not served while its files may change";
  bool said = false;
  for (const auto& m : r.messages)
    said |= m.find("still being written") != std::string::npos;
  EXPECT_TRUE(said) << "the scan report says why";
  fs::last_write_time(tmp_ / "vols/9.ec03", vif_time + std::chrono::seconds(3));  // still growing
  volumes_->Scan();
  EXPECT_EQ(volumes_->snapshot()->ec.count(9), 0u) << "changed since the last scan";
  volumes_->Scan();  // the same files as at the last scan: settled
  EXPECT_EQ(volumes_->snapshot()->ec.count(9), 1u);
  // A .vif written after the shards (weed's last step) is served at once, without a second scan.
  const auto gen2 = Generate(tmp_ / "src2", 8, 20, 4);
  ASSERT_TRUE(ec::EncodeEcVolume(gen2.dat, gen2.idx, tmp_ / "vols", "8", {}).ok());
  volumes_->Scan();
  EXPECT_EQ(volumes_->snapshot()->ec.count(8), 1u);
}

TEST_F(AgentMetricsTest, EcVolumesAndTheirShardsAreCounted) {
  const auto gen = Generate(tmp_ / "src", 9, 40, 3);
  ASSERT_TRUE(ec::EncodeEcVolume(gen.dat, gen.idx, tmp_ / "vols", "9", {}).ok());
  fs::remove(tmp_ / "vols/9.ec13");  // a parity shard held by another server
  ScanReport r = volumes_->Scan();
  EXPECT_EQ(r.ec_volumes, 1u);
  EXPECT_EQ(r.exported, 1u);
  std::string m = Render();
  EXPECT_EQ(Series(m, "swrdma_ec_volumes"), 1) << m;
  EXPECT_EQ(Series(m, "swrdma_ec_shards"), 13);
  EXPECT_EQ(Series(m, "swrdma_ec_shard_bytes"), 13.0 * fs::file_size(tmp_ / "vols/9.ec00"));
  EXPECT_EQ(Series(m, "swrdma_exported_volumes"), 0);
  // The shards gone: no longer served.
  for (const auto& f : fs::directory_iterator(tmp_ / "vols"))
    fs::remove(f.path());
  r = volumes_->Scan();
  EXPECT_EQ(r.ec_volumes, 0u);
  EXPECT_EQ(r.removed, 1u);
  EXPECT_EQ(Series(Render(), "swrdma_ec_volumes"), 0);
}

TEST_F(AgentMetricsTest, ScansExportsGenerationChangesAndIndexSeries) {
  const auto first = Generate(tmp_ / "vols", 7, 50, 1);
  ScanReport r = volumes_->Scan();
  ASSERT_EQ(r.exported, 1u);
  ASSERT_EQ(r.registration_seconds.size(), 1u);
  metrics_.ObserveScan(r);
  std::string m = Render();
  EXPECT_EQ(Series(m, "swrdma_volume_scans_total"), 1) << m;
  EXPECT_EQ(Series(m, "swrdma_volume_exports_total"), 1);
  EXPECT_EQ(Series(m, "swrdma_registration_seconds_count"), 1);
  EXPECT_EQ(Series(m, R"(swrdma_generation_changes_total{reason="index_rebuilt"})"), 0);
  EXPECT_EQ(Series(m, "swrdma_index_entries_applied_total"), 50 + first.deleted);
  EXPECT_EQ(Series(m, R"(swrdma_index_needles{state="live",volume="7"})"), 50 - first.deleted);
  EXPECT_EQ(Series(m, R"(swrdma_index_needles{state="deleted",volume="7"})"), first.deleted);
  EXPECT_EQ(Series(m, "swrdma_index_unapplied_bytes"), 0);

  // The volume server appends an index entry the agent has not applied yet.
  {
    std::ofstream idx(first.idx, std::ios::app | std::ios::binary);
    idx << std::string(16, '\0');
  }
  EXPECT_EQ(Series(Render(), "swrdma_index_unapplied_bytes"), 16);

  // Vacuum: a new file renamed over the old one is a new generation of the same volume.
  Generate(tmp_ / "stage", 7, 30, 2);
  fs::rename(tmp_ / "stage/7.dat", tmp_ / "vols/7.dat");
  fs::rename(tmp_ / "stage/7.idx", tmp_ / "vols/7.idx");
  if (fs::exists(tmp_ / "stage/7.vif")) fs::rename(tmp_ / "stage/7.vif", tmp_ / "vols/7.vif");
  r = volumes_->Scan();
  ASSERT_EQ(r.exported, 1u);
  ASSERT_EQ(r.generation_changes.size(), 1u);
  EXPECT_EQ(r.generation_changes.begin()->first, "index_rebuilt");
  metrics_.ObserveScan(r);
  m = Render();
  EXPECT_EQ(Series(m, R"(swrdma_generation_changes_total{reason="index_rebuilt"})"), 1) << m;
  EXPECT_EQ(Series(m, "swrdma_volume_exports_total"), 2);
  EXPECT_EQ(Series(m, "swrdma_registration_seconds_count"), 2);
  EXPECT_EQ(Series(m, "swrdma_index_unapplied_bytes"), 0);

  // A scan caused by a file event reports how long the change took to be applied.
  r.change_to_applied_seconds = 0.05;
  metrics_.ObserveScan(r);
  EXPECT_EQ(Series(Render(), "swrdma_index_apply_delay_seconds_count"), 1);

  // The volume leaves the disk: counted, and its per-volume series are gone.
  for (const char* ext : {".dat", ".idx", ".vif"})
    fs::remove(tmp_ / "vols" / (std::string("7") + ext));
  r = volumes_->Scan();
  EXPECT_EQ(r.removed, 1u);
  metrics_.ObserveScan(r);
  m = Render();
  EXPECT_EQ(Series(m, "swrdma_volume_removals_total"), 1);
  EXPECT_EQ(Series(m, R"(swrdma_index_needles{state="live",volume="7"})"), -1) << m;
  EXPECT_EQ(Series(m, "swrdma_exported_volumes"), 0);
}

TEST_F(AgentMetricsTest, TransportsAndDevicesAreGauges) {
  metrics_.SetTransports({"tcp", "posix"});
  std::string m = Render();
  EXPECT_EQ(Series(m, R"(swrdma_transport_available{transport="tcp"})"), 1) << m;
  EXPECT_EQ(Series(m, R"(swrdma_transport_available{transport="posix"})"), 1);
  metrics_.SetTransports({"rc_mlx5"});
  m = Render();
  EXPECT_EQ(Series(m, R"(swrdma_transport_available{transport="posix"})"), -1);
  EXPECT_EQ(Series(m, R"(swrdma_transport_available{transport="rc_mlx5"})"), 1);
  EXPECT_EQ(Series(m, "swrdma_rdma_devices"), 0);
  metrics_.SetRdmaDevices(2, 3);
  m = Render();
  EXPECT_EQ(Series(m, "swrdma_rdma_devices"), 2);
  EXPECT_EQ(Series(m, "swrdma_rdma_ports_active"), 3);
}

// Verbs series exist only on an agent with verbs, and follow the exporter at every scrape: the
// accepted counter never goes back, the gauges do.
TEST_F(AgentMetricsTest, VerbsSeriesComeFromTheExporterAtScrapeTime) {
  std::string m = Render();
  EXPECT_EQ(Series(m, "swrdma_verbs_connections"), -1) << "no verbs, no series";
  AgentMetrics::VerbsTotals t{.connections = 3,
                              .accepted = 5,
                              .registered_bytes = 1 << 20,
                              .regions = 2,
                              .pinned_limit_bytes = 4 << 20,
                              .pinned_bytes = 3 << 20,
                              .pin_refusals = 2,
                              .unregistered_bytes = 5 << 20};
  metrics_.SetVerbsSource([&t] { return t; });
  m = Render();
  EXPECT_EQ(Series(m, "swrdma_verbs_connections"), 3) << m;
  EXPECT_EQ(Series(m, "swrdma_verbs_connections_accepted_total"), 5);
  EXPECT_EQ(Series(m, "swrdma_verbs_registered_bytes"), 1 << 20);
  EXPECT_EQ(Series(m, "swrdma_verbs_memory_regions"), 2);
  EXPECT_EQ(Series(m, "swrdma_verbs_pinned_limit_bytes"), 4 << 20);
  EXPECT_EQ(Series(m, "swrdma_verbs_pinned_bytes"), 3 << 20);
  EXPECT_EQ(Series(m, "swrdma_verbs_pin_refusals_total"), 2);
  EXPECT_EQ(Series(m, "swrdma_verbs_unregistered_bytes"), 5 << 20);
  // Vacuum retired the registrations; the budget is unlimited now.
  t = {.connections = 1,
       .accepted = 9,
       .registered_bytes = 0,
       .regions = 0,
       .pinned_limit_bytes = rdma::PinBudget::kUnlimited,
       .pinned_bytes = 0,
       .pin_refusals = 2,
       .unregistered_bytes = 0};
  m = Render();
  EXPECT_EQ(Series(m, "swrdma_verbs_connections"), 1);
  EXPECT_EQ(Series(m, "swrdma_verbs_connections_accepted_total"), 9);
  EXPECT_EQ(Series(m, "swrdma_verbs_registered_bytes"), 0);
  EXPECT_TRUE(std::isinf(Series(m, "swrdma_verbs_pinned_limit_bytes"))) << "no limit: +Inf";
  EXPECT_EQ(Series(m, "swrdma_verbs_pin_refusals_total"), 2) << "a counter never goes back";
}

// The heap gauge is the allocator's own count (sanitizer allocator in ASan builds, glibc
// otherwise): a block kept alive shows in it, and leaves it once freed.
TEST_F(AgentMetricsTest, HeapInUseFollowsTheAllocator) {
  constexpr size_t kBlock = 64 << 20;
  const double before = Series(Render(), "swrdma_heap_in_use_bytes");
  ASSERT_GT(before, 0);
  auto block = std::make_unique<char[]>(kBlock);
  asm volatile("" : : "r"(block.get()) : "memory");  // the allocation must not be elided
  const double during = Series(Render(), "swrdma_heap_in_use_bytes");
  // 7/8 of the block, not all of it: the test's other threads (Render's strings, gtest) may
  // free a few hundred bytes between the two readings.
  EXPECT_GE(during - before, static_cast<double>(kBlock) * 7 / 8) << before << " -> " << during;
  block.reset();
  const double after = Series(Render(), "swrdma_heap_in_use_bytes");
  EXPECT_LT(after, during - static_cast<double>(kBlock) / 2) << during << " -> " << after;
}

// One request over a fresh connection; returns the raw response (headers and body).
std::string RawRequest(uint16_t port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

std::string Get(uint16_t port, const std::string& target, const std::string& extra = {}) {
  return RawRequest(
      port, "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + "\r\n");
}

TEST(AgentHttpMetricsTest, ConnectionsAndResponsesByClassComeFromTheServer) {
  HttpServerOptions o;
  o.listen = {"127.0.0.1:0"};
  auto server = HttpServer::Start(o, [](const HttpRequest& r) {
    if (r.Path() == "/ok") return HttpResponse::Json(200, "{}");
    if (r.Path() == "/boom") return HttpResponse::JsonError(503, "boom");
    return HttpResponse::JsonError(404, "no");
  });
  ASSERT_TRUE(server) << server.error().ToString();
  const uint16_t port = (*server)->ports()[0];
  AgentMetrics metrics;
  metrics.SetHttpStatsSource([s = server->get()] { return s->Stats(); });
  VolumeMap none;
  std::string m = metrics.Render(none);
  EXPECT_EQ(Series(m, R"(swrdma_http_responses_total{class="2xx"})"), 0) << m;

  EXPECT_NE(Get(port, "/ok").find("200 OK"), std::string::npos);
  EXPECT_NE(Get(port, "/ok").find("200 OK"), std::string::npos);
  EXPECT_NE(Get(port, "/nope").find("404"), std::string::npos);
  EXPECT_NE(Get(port, "/boom").find("503"), std::string::npos);
  m = metrics.Render(none);
  EXPECT_EQ(Series(m, R"(swrdma_http_responses_total{class="2xx"})"), 2) << m;
  EXPECT_EQ(Series(m, R"(swrdma_http_responses_total{class="4xx"})"), 1);
  EXPECT_EQ(Series(m, R"(swrdma_http_responses_total{class="5xx"})"), 1);
  EXPECT_EQ(Series(m, "swrdma_http_requests_total"), 4);
  EXPECT_EQ(Series(m, "swrdma_http_connections_accepted_total"), 4);
  EXPECT_EQ(Series(m, "swrdma_http_connections_refused_total"), 0);
  EXPECT_GE(Series(m, "swrdma_http_connections_open"), 0);
  // Rendering again does not count twice.
  EXPECT_EQ(Series(metrics.Render(none), R"(swrdma_http_responses_total{class="2xx"})"), 2);
}

TEST(AgentHttpMetricsTest, RequestIdsAreTakenWhenSaneAndEchoed) {
  std::mutex mu;
  std::vector<std::string> seen;
  HttpServerOptions o;
  o.listen = {"127.0.0.1:0"};
  auto server = HttpServer::Start(o, [&](const HttpRequest& r) {
    std::lock_guard lock(mu);
    seen.push_back(r.request_id);
    return HttpResponse::Json(200, "{}");
  });
  ASSERT_TRUE(server) << server.error().ToString();
  const uint16_t port = (*server)->ports()[0];

  std::string resp = Get(port, "/", "X-Request-Id: client-42.a:b_c\r\n");
  EXPECT_NE(resp.find("X-Request-Id: client-42.a:b_c\r\n"), std::string::npos) << resp;
  resp = Get(port, "/", "X-Request-Id: has space\r\n");
  // A copy: the match's iterators point into `resp`, which is reassigned below.
  std::string generated;
  {
    std::smatch id;
    ASSERT_TRUE(std::regex_search(resp, id, std::regex("X-Request-Id: ([^\r]+)\r\n"))) << resp;
    generated = id[1].str();
  }
  EXPECT_NE(generated, "has space");
  resp = Get(port, "/", "X-Request-Id: " + std::string(65, 'a') + "\r\n");
  EXPECT_EQ(resp.find(std::string(65, 'a')), std::string::npos);
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], "client-42.a:b_c");  // what the handler logs with
  EXPECT_EQ(seen[1], generated);          // the id the agent made up is the one it echoed

  EXPECT_TRUE(IsSaneRequestId("0a1b-2c3d"));
  EXPECT_FALSE(IsSaneRequestId(""));
  EXPECT_FALSE(IsSaneRequestId("a\r\nX-Evil: 1"));
  EXPECT_FALSE(IsSaneRequestId("{json}"));
}

TEST_F(AgentMetricsTest, LookupTimingOnlyWhenAsked) {
  const auto gen = Generate(tmp_ / "vols", 3, 10, 5);
  ASSERT_EQ(volumes_->Scan().exported, 1u);
  ServiceOptions so;
  so.agent_version = "test";
  AgentService service(*volumes_, so);
  const GeneratedNeedle* live = nullptr;
  for (const auto& n : gen.needles)
    if (!n.deleted) live = &n;
  ASSERT_NE(live, nullptr);
  LookupRequest req;
  req.fids = {FormatFileId(live->fid)};
  auto lookup = [&](const std::string& target, std::vector<HttpHeader> headers) {
    HttpRequest r;
    r.method = "POST";
    r.target = target;
    r.headers = std::move(headers);
    r.body = EncodeBody(ToJson(req), WireFormat::kMsgpack);
    HttpResponse resp = service.Handle(r);
    EXPECT_EQ(resp.status, 200) << resp.body;
    auto tree = DecodeBody(resp.body, WireFormat::kMsgpack);
    EXPECT_TRUE(tree);
    auto decoded = LookupResponseFromJson(*tree);
    EXPECT_TRUE(decoded) << decoded.error().ToString();
    EXPECT_EQ(tree->contains("timing"), decoded->timing.has_value());
    return *decoded;
  };
  auto plain = lookup("/v1/lookup", {});
  EXPECT_FALSE(plain.timing);
  ASSERT_EQ(plain.results.size(), 1u);
  EXPECT_EQ(plain.results[0].status, LookupStatus::kOk);
  auto timed = lookup("/v1/lookup?timing=1", {});
  ASSERT_TRUE(timed.timing);
  EXPECT_EQ(timed.results[0].address, plain.results[0].address);
  EXPECT_TRUE(lookup("/v1/lookup", {{"X-Swrdma-Timing", "1"}}).timing);

  // The object round-trips and stays out of answers that do not carry it.
  LookupResponse r;
  EXPECT_FALSE(ToJson(r).contains("timing"));
  r.timing = LookupTiming{1, 2, 3};
  auto back = LookupResponseFromJson(ToJson(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->timing, (LookupTiming{1, 2, 3}));
  auto bad = ToJson(r);
  bad["timing"] = "fast";
  EXPECT_FALSE(LookupResponseFromJson(bad));
}

rdma::RdmaDiscovery NoDevices() {
  rdma::RdmaDiscovery d;
  d.messages = {std::string(rdma::kNoRdmaDevicesMessage)};
  return d;
}

rdma::RdmaDiscovery OneDevice(const std::string& port_state) {
  rdma::RdmaDiscovery d;
  rdma::RdmaDevice dev;
  dev.name = "mlx5_0";
  dev.ports.push_back({1, port_state, "InfiniBand", 1, 4096, {}});
  d.devices.push_back(dev);
  return d;
}

TEST(DeviceMonitorTest, DescribesHotPlugChanges) {
  EXPECT_TRUE(DescribeDeviceChanges(NoDevices(), NoDevices()).empty());
  auto appeared = DescribeDeviceChanges(NoDevices(), OneDevice("PORT_ACTIVE"));
  ASSERT_EQ(appeared.size(), 1u);
  EXPECT_NE(appeared[0].find("mlx5_0 appeared"), std::string::npos) << appeared[0];
  auto down = DescribeDeviceChanges(OneDevice("PORT_ACTIVE"), OneDevice("PORT_DOWN"));
  ASSERT_EQ(down.size(), 1u);
  EXPECT_EQ(down[0], "RDMA port mlx5_0:1 PORT_ACTIVE -> PORT_DOWN");
  auto gone = DescribeDeviceChanges(OneDevice("PORT_DOWN"), NoDevices());
  ASSERT_EQ(gone.size(), 2u);  // the device, then the discovery's "no RDMA devices" note
  EXPECT_NE(gone[0].find("mlx5_0 is gone"), std::string::npos);
  EXPECT_EQ(gone[1], rdma::kNoRdmaDevicesMessage);
  EXPECT_EQ(ActivePorts(OneDevice("PORT_ACTIVE")), 1u);
  EXPECT_EQ(ActivePorts(OneDevice("PORT_DOWN")), 0u);
}

TEST(DeviceMonitorTest, AHostWithoutDevicesSaysSoOnlyOnce) {
  std::mutex mu;
  std::vector<std::string> lines;
  std::vector<size_t> device_counts;
  rdma::RdmaDiscovery next = NoDevices();
  DeviceMonitorOptions o;
  o.interval = std::chrono::hours(1);  // scans below are explicit
  o.discover = [&] {
    std::lock_guard lock(mu);
    return next;
  };
  o.log = [&](const std::string& l) {
    std::lock_guard lock(mu);
    lines.push_back(l);
  };
  o.on_scan = [&](const rdma::RdmaDiscovery& d) {
    std::lock_guard lock(mu);
    device_counts.push_back(d.devices.size());
  };
  auto monitor = DeviceMonitor::Start(NoDevices(), o);  // start-up already logged "none"
  ASSERT_TRUE(monitor);
  (*monitor)->ScanOnce();
  (*monitor)->ScanOnce();
  {
    std::lock_guard lock(mu);
    EXPECT_TRUE(lines.empty());
    next = OneDevice("PORT_ACTIVE");
  }
  (*monitor)->ScanOnce();
  (*monitor)->ScanOnce();
  (*monitor)->Stop();
  std::lock_guard lock(mu);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("appeared"), std::string::npos);
  EXPECT_EQ(device_counts, (std::vector<size_t>{0, 0, 0, 1, 1}));
}

}  // namespace
}  // namespace swrdma::agent
