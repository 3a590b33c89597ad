// rdma::BufferPool: registered buffers reused across reads (hits and misses), LRU release of idle
// chunks, hugepage backing or its fallback, buffers outliving the pool, the owner thread's
// lock-free magazines next to other threads' locked path, and real gets over tcp
// loopback into pooled buffers and out of a pooled buffer described for a peer (push mode's API).
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "rdma/buffer_pool.h"
#include "rdma/ucx/get.h"
#include "rdma/ucx/memory_region.h"
#include "rdma/ucx/ucx_context.h"
#include "rdma/ucx/ucx_endpoint.h"
#include "rdma/ucx/ucx_worker.h"

namespace swrdma::rdma {
namespace {

using namespace std::chrono_literals;

UcxContext Context() {
  // RMA: the pool's own API test below gets between two workers of this process.
  auto c = UcxContext::Create({.transports = "tcp", .net_devices = "lo", .rma = true});
  EXPECT_TRUE(c.has_value()) << c.error().ToString();
  return std::move(*c);
}

TEST(BufferPoolTest, SizeClassesRoundToPagesInQuarterSteps) {
  EXPECT_EQ(BufferPool::SizeClass(1), 4096u);
  EXPECT_EQ(BufferPool::SizeClass(4096), 4096u);
  EXPECT_EQ(BufferPool::SizeClass(4096 + 40), 8192u);
  EXPECT_EQ(BufferPool::SizeClass(5 * 4096), 5 * 4096u);
  EXPECT_EQ(BufferPool::SizeClass(9 * 4096), 10 * 4096u);
  // A 1 MiB needle record (data + header, checksum, timestamp, padding) takes 1.25 MiB.
  EXPECT_EQ(BufferPool::SizeClass((1u << 20) + 40), (1u << 20) + (1u << 18));
  for (size_t n : {size_t{1}, size_t{4097}, size_t{70'000}, size_t{3'000'000}}) {
    EXPECT_GE(BufferPool::SizeClass(n), n);
    EXPECT_EQ(BufferPool::SizeClass(n) % 4096, 0u);
  }
}

TEST(BufferPoolTest, ReleasedBuffersAreReusedAndCounted) {
  UcxContext context = Context();
  UcxRegistrar registrar(context);
  auto pool = BufferPool::Create(registrar);
  ASSERT_TRUE(pool.has_value()) << pool.error().ToString();
  std::byte* first = nullptr;
  {
    auto a = pool->Acquire(4200);
    ASSERT_TRUE(a.has_value()) << a.error().ToString();
    EXPECT_GE(a->size(), 4200u);
    EXPECT_NE(UcxMemh(a->registration()), nullptr);
    first = a->data();
    std::memset(a->data(), 0x5a, a->size());  // writable, already faulted in
    auto b = pool->Acquire(4200);             // same class, same chunk: no new registration
    ASSERT_TRUE(b.has_value());
    EXPECT_NE(b->data(), a->data());
    EXPECT_EQ(pool->stats().buffers_out, 2u);
  }
  auto c = pool->Acquire(5000);  // same class again: the most recently released buffer
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->data() == first || pool->stats().chunks == 1u);
  const BufferPoolStats s = pool->stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.chunks, 1u);
  EXPECT_EQ(s.registered_bytes, size_t{2} << 20);
  EXPECT_DOUBLE_EQ(s.hit_rate(), 2.0 / 3.0);
  EXPECT_EQ(s.hugepages, "off");
}

TEST(BufferPoolTest, IdleChunksBeyondTheLimitAreReleasedLeastRecentlyUsedFirst) {
  UcxContext context = Context();
  UcxRegistrar registrar(context);
  // Buffers of 3, 4 and 5 MiB (one chunk each); 9 MiB of idle chunks may stay.
  auto pool = BufferPool::Create(registrar, {.max_idle_bytes = size_t{9} << 20});
  ASSERT_TRUE(pool.has_value());
  constexpr size_t kBig = 3u << 20;
  {
    auto a = pool->Acquire(kBig);
    auto b = pool->Acquire(kBig + 4096 * 200);  // another class
    auto c = pool->Acquire(kBig + 4096 * 400);  // and another
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ(pool->stats().chunks, 3u);
    a->Release();  // idle order, oldest first: a, b, c
    b->Release();
  }  // c released: 12 MiB idle > 9: the least recently idle (a) goes
  BufferPoolStats s = pool->stats();
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.chunks, 2u);
  auto again_c = pool->Acquire(kBig + 4096 * 400);  // still cached: a hit
  auto again_a = pool->Acquire(kBig);               // was evicted: a miss
  ASSERT_TRUE(again_c && again_a);
  s = pool->stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 4u);
}

TEST(BufferPoolTest, HugepagesAreUsedOrTheFallbackIsExplained) {
  UcxContext context = Context();
  UcxRegistrar registrar(context);
  auto pool = BufferPool::Create(registrar, {.hugepages = true});
  ASSERT_TRUE(pool.has_value());
  auto a = pool->Acquire(8192);
  ASSERT_TRUE(a.has_value()) << a.error().ToString();
  std::memset(a->data(), 1, a->size());
  const BufferPoolStats s = pool->stats();
  if (s.hugepages == "hugetlb") {
    EXPECT_TRUE(s.hugepage_note.empty());
  } else {
    EXPECT_TRUE(s.hugepages == "thp" || s.hugepages == "off") << s.hugepages;
    EXPECT_NE(s.hugepage_note.find("MAP_HUGETLB"), std::string::npos) << s.hugepage_note;
    EXPECT_NE(s.hugepage_note.find("nr_hugepages"), std::string::npos) << s.hugepage_note;
  }
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a->data()) % (2u << 20), 0u);  // chunk on a 2 MiB boundary
}

TEST(BufferPoolTest, BuffersOutliveTheirPool) {
  UcxContext context = Context();
  UcxRegistrar registrar(context);
  PooledBuffer kept;
  {
    auto pool = BufferPool::Create(registrar);
    ASSERT_TRUE(pool.has_value());
    auto a = pool->Acquire(100);
    ASSERT_TRUE(a.has_value());
    kept = std::move(*a);
    std::memset(kept.data(), 7, kept.size());
  }
  EXPECT_EQ(UcxMemh(kept.registration()), nullptr);  // unregistered with the pool
  EXPECT_EQ(static_cast<int>(kept.data()[99]), 7);
  EXPECT_FALSE(kept.Describe().has_value());
  kept.Release();  // unmaps the orphaned chunk
  EXPECT_FALSE(kept);
}

// The owner thread (the first to acquire) cycles small buffers through its magazines: more
// buffers than a magazine holds, released and acquired again, are all hits in the same chunk,
// distinct while out, and the counters match what a locked pool would say.
TEST(BufferPoolTest, OwnerThreadReusesBuffersBeyondItsMagazine) {
  UcxContext context = Context();
  UcxRegistrar registrar(context);
  auto pool = BufferPool::Create(registrar);
  ASSERT_TRUE(pool.has_value());
  constexpr size_t kCount = 200;  // 8 KiB class: 256 per chunk, magazine depth 64
  for (int round = 0; round < 3; ++round) {
    std::vector<PooledBuffer> out;
    std::set<std::byte*> seen;
    for (size_t i = 0; i < kCount; ++i) {
      auto b = pool->Acquire(4096 + 40);
      ASSERT_TRUE(b.has_value()) << b.error().ToString();
      ASSERT_TRUE(seen.insert(b->data()).second) << "buffer handed out twice";
      std::memset(b->data(), static_cast<int>(i), b->size());
      out.push_back(std::move(*b));
    }
    EXPECT_EQ(pool->stats().buffers_out, kCount);
    for (size_t i = 0; i < kCount; ++i)  // nobody wrote into another's buffer
      ASSERT_EQ(static_cast<int>(out[i].data()[out[i].size() - 1]), static_cast<int>(i & 0xff));
    out.clear();
    EXPECT_EQ(pool->stats().buffers_out, 0u);
  }
  const BufferPoolStats s = pool->stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 3 * kCount - 1);
  EXPECT_EQ(s.chunks, 1u);
}

// Buffers released on another thread go back through the locked path and are handed out again;
// a second thread acquiring at the same time as the owner never gets a buffer the owner holds.
TEST(BufferPoolTest, OtherThreadsShareThePoolWithItsOwner) {
  UcxContext context = Context();
  UcxRegistrar registrar(context);
  auto pool = BufferPool::Create(registrar);
  ASSERT_TRUE(pool.has_value());
  auto first = pool->Acquire(100);  // this thread owns the magazines now
  ASSERT_TRUE(first.has_value());
  std::thread([b = std::move(*first)]() mutable { b.Release(); }).join();
  EXPECT_EQ(pool->stats().buffers_out, 0u);

  constexpr int kRounds = 20'000;
  std::atomic<bool> failed{false};
  auto churn = [&](std::byte mark) {
    std::vector<PooledBuffer> held;
    for (int i = 0; i < kRounds && !failed; ++i) {
      auto b = pool->Acquire(i % 3 == 0 ? 9000 : 4096);
      if (!b) {
        failed = true;
        return;
      }
      std::memset(b->data(), static_cast<int>(mark), b->size());
      held.push_back(std::move(*b));
      if (held.size() == 16 || i + 1 == kRounds) {
        for (auto& h : held)
          if (h.data()[0] != mark || h.data()[h.size() - 1] != mark) failed = true;
        held.clear();
      }
    }
  };
  std::thread other(churn, std::byte{0xb0});
  churn(std::byte{0xa0});
  other.join();
  EXPECT_FALSE(failed) << "a buffer was handed to two threads at once, or Acquire failed";
  const BufferPoolStats s = pool->stats();
  EXPECT_EQ(s.buffers_out, 0u);
  EXPECT_EQ(s.hits + s.misses, 2u * kRounds + 1);
}

// The pool goes while its owner's magazine holds buffers and a user still holds one: that one
// stays usable and is given back later without touching the gone pool's registration.
TEST(BufferPoolTest, PoolGoesWhileItsMagazineHoldsBuffers) {
  UcxContext context = Context();
  UcxRegistrar registrar(context);
  PooledBuffer kept;
  {
    auto pool = BufferPool::Create(registrar);
    ASSERT_TRUE(pool.has_value());
    std::vector<PooledBuffer> some;
    for (int i = 0; i < 10; ++i)
      some.push_back(std::move(*pool->Acquire(4096)));
    kept = std::move(some.back());
    some.pop_back();
    some.clear();  // into the magazine
  }
  EXPECT_EQ(UcxMemh(kept.registration()), nullptr);
  std::memset(kept.data(), 3, kept.size());
  kept.Release();
  EXPECT_FALSE(kept);
}

// A peer reads a pooled buffer through its Describe() (address + packed rkey), into a pooled
// buffer of its own with GetBatch::PostPooled: both directions of the pool's API over tcp.
TEST(BufferPoolTest, GetsLandInPooledBuffersAndPeersReachDescribedOnes) {
  std::promise<std::pair<std::vector<uint8_t>, RemoteRegion>> published;
  std::atomic<bool> stop{false};
  constexpr size_t kBytes = 300'000;
  std::thread target([&] {
    UcxContext context = Context();
    UcxRegistrar registrar(context);
    auto worker = UcxWorker::Create(context);
    auto pool = BufferPool::Create(registrar);
    if (!worker || !pool) return published.set_value({});
    auto buffer = pool->Acquire(kBytes);
    if (!buffer) return published.set_value({});
    for (size_t i = 0; i < kBytes; ++i)
      buffer->data()[i] = static_cast<std::byte>(i * 7 + 3);
    auto described = buffer->Describe();
    if (!described) return published.set_value({});
    published.set_value({worker->address(), std::move(*described)});
    while (!stop)
      worker->Progress();
  });
  auto [address, region] = published.get_future().get();
  ASSERT_FALSE(address.empty());
  EXPECT_GE(region.length, kBytes);
  {
    UcxContext context = Context();
    UcxRegistrar registrar(context);
    auto worker = UcxWorker::Create(context);
    ASSERT_TRUE(worker.has_value());
    auto endpoint = UcxEndpoint::Connect(*worker, address, {});
    ASSERT_TRUE(endpoint.has_value()) << endpoint.error().ToString();
    auto rkey = RemoteKey::Unpack(*endpoint, region);
    ASSERT_TRUE(rkey.has_value()) << rkey.error().ToString();
    auto pool = BufferPool::Create(registrar);
    ASSERT_TRUE(pool.has_value());
    GetBatch batch(*endpoint);
    for (int round = 0; round < 3; ++round) {  // the same buffer comes back each round
      auto dest = pool->Acquire(kBytes);
      ASSERT_TRUE(dest.has_value());
      const size_t i = batch.PostPooled(*rkey, region.address, kBytes, std::move(*dest));
      ASSERT_TRUE(batch.Wait(DeadlineIn(20s)).ok());
      ASSERT_TRUE(batch.status(i).ok()) << batch.status(i).ToString();
      PooledBuffer got = batch.TakePooled(i);
      ASSERT_TRUE(got);
      for (size_t k = 0; k < kBytes; k += 4999)
        ASSERT_EQ(got.data()[k], static_cast<std::byte>(k * 7 + 3)) << k;
      got.Release();
      ASSERT_TRUE(batch.Reset().ok());
    }
    // Too small a buffer fails the get before it is posted.
    auto small = pool->Acquire(4096);
    ASSERT_TRUE(small.has_value());
    const size_t i = batch.PostPooled(*rkey, region.address, 8192, std::move(*small));
    EXPECT_TRUE(batch.done(i));
    EXPECT_EQ(batch.status(i).code(), Code::kInvalidArgument);
    EXPECT_EQ(pool->stats().misses, 2u);  // one per size class
    EXPECT_EQ(pool->stats().hits, 2u);
    ASSERT_TRUE(endpoint->Close(UcxEndpoint::CloseMode::kFlush, DeadlineIn(5s)).ok());
  }
  stop = true;
  target.join();
}

}  // namespace
}  // namespace swrdma::rdma
