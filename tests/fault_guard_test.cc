#include "rdma/fault_guard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "rdma/mapped_file.h"
#include "tests/test_util.h"

namespace swrdma::rdma {
namespace {

namespace fs = std::filesystem;

void WriteFile(const fs::path& p, size_t n, char c) {
  std::ofstream f(p, std::ios::binary);
  f << std::string(n, c);
}

bool MapsMention(const std::string& needle) {
  std::ifstream maps("/proc/self/maps");
  std::stringstream ss;
  ss << maps.rdbuf();
  return ss.str().find(needle) != std::string::npos;
}

uint8_t ReadByte(const std::byte* p) {
  return static_cast<uint8_t>(*reinterpret_cast<const volatile std::byte*>(p));
}

TEST(FaultGuard, ReadsPastEndOfFileInTheReserveGiveZeros) {
  testing::TempDir tmp;
  WriteFile(tmp / "f", 5000, 'a');
  MapOptions o;
  o.guard = true;
  o.reserve = 1 << 20;
  auto m = MappedFile::Open(tmp / "f", o);
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_EQ(m->size(), 5000u);
  EXPECT_EQ(m->mapped_length(), 5000u + (1 << 20));
  EXPECT_EQ(ReadByte(m->data() + 10), 'a');
  EXPECT_FALSE(m->TakeFaulted());
  const uint64_t before = FaultGuard::patched_faults();
  EXPECT_EQ(ReadByte(m->data() + 500000), 0);  // past end of file: SIGBUS, patched
  EXPECT_TRUE(m->TakeFaulted());
  EXPECT_FALSE(m->TakeFaulted());
  EXPECT_EQ(FaultGuard::patched_faults(), before + 1);
}

TEST(FaultGuard, TruncatedFileDoesNotKillTheReader) {
  testing::TempDir tmp;
  WriteFile(tmp / "f", 64 * 1024, 'b');
  MapOptions o;
  o.guard = true;
  auto m = MappedFile::Open(tmp / "f", o);
  ASSERT_TRUE(m);
  EXPECT_EQ(ReadByte(m->data() + 40000), 'b');
  fs::resize_file(tmp / "f", 4096);
  EXPECT_EQ(ReadByte(m->data() + 100), 'b');  // still in the file
  EXPECT_EQ(ReadByte(m->data() + 40000), 0);  // cut off: zeros, not a crash
  EXPECT_TRUE(m->TakeFaulted());
}

// More guarded ranges than one chunk of slots (4096): a server with thousands of volumes and EC
// shards maps one range each. A fault in a range guarded after all of those is still patched,
// freed slots are reused, and the capacity is far above what a volume server holds.
TEST(FaultGuard, TensOfThousandsOfRangesAreGuarded) {
  EXPECT_GE(FaultGuard::capacity(), 1 << 20);
  // Address ranges nobody maps (never touched): only the bookkeeping is exercised.
  static char fake[1];
  std::vector<int> slots;
  for (int i = 0; i < 20000; ++i) {
    const int slot = FaultGuard::Guard(fake, 1);
    ASSERT_GE(slot, 0) << "range " << i << " got no slot";
    slots.push_back(slot);
  }
  testing::TempDir tmp;
  WriteFile(tmp / "f", 5000, 'c');
  MapOptions o;
  o.guard = true;
  o.reserve = 1 << 20;
  auto m = MappedFile::Open(tmp / "f", o);
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_EQ(ReadByte(m->data() + 300000), 0);  // past the end: patched, not fatal
  EXPECT_TRUE(m->TakeFaulted());
  for (int slot : slots)
    FaultGuard::Unguard(slot);
  // Freed slots are handed out again rather than growing without end.
  const int again = FaultGuard::Guard(fake, 1);
  EXPECT_GE(again, 0);
  EXPECT_LT(again, 20001);
  FaultGuard::Unguard(again);
}

TEST(FaultGuard, ReserveWithoutGuardIsRefused) {
  testing::TempDir tmp;
  WriteFile(tmp / "f", 100, 'c');
  MapOptions o;
  o.reserve = 4096;
  auto m = MappedFile::Open(tmp / "f", o);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), Code::kInvalidArgument);
}

TEST(FaultGuard, TombstoneReleasesTheFileButKeepsTheRangeReadable) {
  testing::TempDir tmp;
  const fs::path path = tmp / "tombstoned-volume.dat";
  WriteFile(path, 3 * 4096, 'd');
  const std::byte* addr = nullptr;
  {
    MapOptions o;
    o.guard = true;
    o.tombstone_on_release = true;
    auto m = MappedFile::Open(path, o);
    ASSERT_TRUE(m);
    addr = m->data();
    EXPECT_EQ(ReadByte(addr + 5000), 'd');
    EXPECT_TRUE(MapsMention("tombstoned-volume.dat"));
    fs::remove(path);
  }
  EXPECT_FALSE(MapsMention("tombstoned-volume.dat")) << "the unlinked file is still mapped";
  EXPECT_EQ(ReadByte(addr + 5000), 0);  // a stale reader gets zeros
  EXPECT_GE(FaultGuard::tombstones(), 1u);
  EXPECT_GE(FaultGuard::ReleaseTombstones(std::chrono::seconds(0)), 1u);
  EXPECT_EQ(FaultGuard::tombstones(), 0u);
}

TEST(FaultGuardDeathTest, FaultsOutsideGuardedRangesStillKill) {
  ASSERT_TRUE(FaultGuard::Install().ok());
  // An address nobody maps: mapped, then unmapped.
  void* page = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(page, MAP_FAILED);
  munmap(page, 4096);
  volatile const uint8_t* p = static_cast<volatile const uint8_t*>(page);
  EXPECT_DEATH({ std::printf("%d", p[1]); }, "");
}

}  // namespace
}  // namespace swrdma::rdma
