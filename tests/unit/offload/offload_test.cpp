// offload: pinned pool sizing and blocking, flat stores on CPU and NVMe, the
// sub-group pipeline's order (read k+1 and write k-1 around update k), and
// the worker's ordering and error delivery.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "io/swap_file.h"
#include "io/uring_engine.h"
#include "offload/flat_store.h"
#include "offload/pinned_pool.h"
#include "offload/subgroup_pipeline.h"
#include "offload/worker.h"
#include "support/test_util.h"

using namespace zinf;
using namespace zinf::offload;

namespace {

std::size_t index_of(const std::vector<std::string>& trace, const std::string& what) {
  auto it = std::find(trace.begin(), trace.end(), what);
  REQUIRE_MESSAGE(it != trace.end(), "missing '" << what << "'");
  return static_cast<std::size_t>(it - trace.begin());
}

}  // namespace

TEST_CASE("the pinned pool is never larger than the blocks need") {
  const PoolShape s = pool_shape(5, 1000000, 2, {300, 700, 500});
  CHECK(s.count == 3);               // three blocks of one piece each: a fourth buffer would never be used
  CHECK(s.buffer_bytes == 700 * 2);  // the largest block, not buffer_size
  const PoolShape t = pool_shape(2, 0, 4, {300, 700, 500});
  CHECK(t.count == 2);
  CHECK(t.buffer_bytes == 700 * 4);
  PinnedPool pool(s, /*pin=*/false);
  CHECK(pool.count() == 3);
  CHECK(pool.total_bytes() == 3 * 4096);  // each buffer rounded up to the O_DIRECT unit
  // auto (0) caps a buffer at kAutoBufferBytes for large blocks
  const PoolShape a = pool_shape(5, 0, 4, {std::int64_t(1) << 26});
  CHECK(a.buffer_bytes == kAutoBufferBytes);
  CHECK(a.count == 5);
}

TEST_CASE("a block larger than buffer_size streams through in granule-aligned pieces") {
  const std::int64_t mib = 1 << 20;
  // 3 MiB blocks of bf16 in 1 MiB-granule buffers of about 1.5 MiB: 1 MiB pieces.
  const PoolShape s = pool_shape(4, 3 * mib / 4, 2, {3 * mib / 2, mib / 4}, mib);
  CHECK(s.buffer_bytes == mib);
  CHECK(pieces_of(s, 3 * mib) == 3);
  CHECK(pieces_of(s, mib / 2) == 1);
  CHECK(s.count == 4);  // 3 + 1 pieces
  CHECK_THROWS_WITH(pool_shape(0, 0, 2, {300}), doctest::Contains("buffer_count is 0"));
}

TEST_CASE("acquire blocks until a lease is handed back") {
  PinnedPool pool({1, 4096}, false);
  auto lease = pool.acquire();
  CHECK(pool.in_use() == 1);
  std::atomic<bool> got{false};
  std::thread t([&] {
    auto second = pool.acquire();
    got = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(got.load());
  lease.reset();
  t.join();
  CHECK(got.load());
  CHECK(pool.in_use() == 0);
}

TEST_CASE("flat stores on CPU and NVMe give back what was written, and NVMe counts its bytes") {
  test::TempDir dir("zinf-offload");
  io::UringEngine engine;
  io::SwapDir swap(dir.path(), "run", 0);
  NvmeBackend nvme{&engine, &swap, {}};
  const std::vector<std::int64_t> sizes = {1000, 5000, 1, 8192};
  for (Tier tier : {Tier::kCpu, Tier::kNvme}) {
    CAPTURE(tier_name(tier));
    FlatStore store("params", tier, sizes, nvme);
    std::vector<std::vector<unsigned char>> data;
    for (std::size_t s = 0; s < sizes.size(); ++s) {
      data.emplace_back(sizes[s]);
      for (std::size_t i = 0; i < data[s].size(); ++i) data[s][i] = static_cast<unsigned char>(i * 7 + s);
      store.wait(store.write(s, data[s].data()));
    }
    for (std::size_t s = sizes.size(); s-- > 0;) {
      std::vector<unsigned char> back(sizes[s]);
      store.wait(store.read(s, back.data()));
      CHECK(back == data[s]);
    }
    const std::int64_t total = std::accumulate(sizes.begin(), sizes.end(), std::int64_t(0));
    CHECK(store.total_bytes() == total);
    if (tier == Tier::kNvme) {
      CHECK(store.nvme_write_bytes() == total);
      CHECK(store.nvme_read_bytes() == total);
      CHECK(store.resident_host_bytes() == 0);
      CHECK(store.file_path() == swap.file_path("params"));
      CHECK_THROWS_WITH(store.host(0), doctest::Contains("lives on NVMe"));
    } else {
      CHECK(store.nvme_write_bytes() == 0);
      CHECK(store.resident_host_bytes() >= total);
    }
  }
}

TEST_CASE("sub-groups never cross a block and cover every element once") {
  const auto groups = make_sub_groups({10, 3, 7}, 4);
  REQUIRE(groups.size() == 3 + 1 + 2);
  std::int64_t cursor = 0;
  for (const auto& g : groups) {
    CHECK(g.begin == cursor);
    CHECK(g.numel <= 4);
    cursor += g.numel;
  }
  CHECK(cursor == 20);
  CHECK(groups[3].block == 1);
  CHECK(groups[4].block == 2);
  CHECK(make_sub_groups({10, 3}, 0).size() == 2);  // one per block
  CHECK(auto_sub_group_size(std::int64_t(48) << 30) == std::int64_t(1) << 30);
  CHECK(auto_sub_group_size(1) == std::int64_t(1) << 20);
}

TEST_CASE("the NVMe sub-group pipeline reads k+1 and writes back k-1 around update k, with CPU's results") {
  test::TempDir dir("zinf-offload");
  io::UringEngine engine;
  io::SwapDir swap(dir.path(), "run", 0);
  NvmeBackend nvme{&engine, &swap, {}};
  const std::vector<std::int64_t> blocks = {5000, 3000, 6000};
  const std::int64_t total = 14000;
  std::vector<float> master(total), m(total, 0.f), v(total, 0.f);
  for (std::int64_t i = 0; i < total; ++i) master[i] = float(i) * 0.5f;

  std::vector<std::vector<float>> results;
  for (Tier tier : {Tier::kCpu, Tier::kNvme}) {
    OptimizerStates states(tier, make_sub_groups(blocks, 2048), nvme);
    states.load(master.data(), m.data(), nullptr);
    std::vector<std::string> trace;
    for (int pass = 0; pass < 2; ++pass) {
      trace.clear();
      states.for_each([&](std::size_t k, float* w, float* mk, float* vk) {
        const auto& g = states.groups()[k];
        for (std::int64_t i = 0; i < g.numel; ++i) {
          w[i] += 1.0f;
          mk[i] = float(g.begin + i);
          vk[i] += float(k);
        }
      }, &trace);
    }
    const std::size_t n = states.groups().size();
    REQUIRE(n == 3 + 2 + 3);
    if (tier == Tier::kNvme) {
      for (std::size_t k = 0; k + 1 < n; ++k) CHECK(index_of(trace, "read " + std::to_string(k + 1)) < index_of(trace, "update " + std::to_string(k)));
      for (std::size_t k = 1; k < n; ++k) CHECK(index_of(trace, "write " + std::to_string(k - 1)) < index_of(trace, "update " + std::to_string(k)));
      // Three buffers: sub-group k+3 is read only once k's write has landed.
      for (std::size_t k = 0; k + 3 < n; ++k)
        CHECK(index_of(trace, "written " + std::to_string(k)) < index_of(trace, "read " + std::to_string(k + 3)));
      CHECK(states.nvme_read_bytes() == 3 * 4 * total * 2);
      CHECK(states.host_buffer_bytes() < 3 * 4 * total);  // three sub-groups, not the whole state
    }
    std::vector<float> w(total), mm(total), vv(total);
    states.save(w.data(), mm.data(), vv.data());
    std::vector<float> all(w);
    all.insert(all.end(), mm.begin(), mm.end());
    all.insert(all.end(), vv.begin(), vv.end());
    results.push_back(all);
    CHECK(w[10] == doctest::Approx(5.0f + 2.0f));
    CHECK(mm[13999] == doctest::Approx(13999.0f));
  }
  CHECK(results[0] == results[1]);
}

TEST_CASE("optimizer states split between CPU and NVMe, with gradients read from NVMe, update like all-CPU") {
  test::TempDir dir("zinf-offload");
  io::UringEngine engine;
  io::SwapDir swap(dir.path(), "run", 0);
  NvmeBackend nvme{&engine, &swap, {}};
  const std::vector<std::int64_t> blocks = {5000, 3000, 6000};
  const auto groups = make_sub_groups(blocks, 2048);
  std::vector<float> master(14000);
  for (std::size_t i = 0; i < master.size(); ++i) master[i] = float(i) * 0.25f;
  // Gradient segments, one per sub-group, on NVMe: g = begin + i.
  std::vector<std::int64_t> grad_bytes;
  for (const auto& g : groups) grad_bytes.push_back(4 * g.numel);
  FlatStore grads("grads", Tier::kNvme, grad_bytes, nvme);
  for (std::size_t k = 0; k < groups.size(); ++k) {
    io::AlignedBuffer b(4 * groups[k].numel);
    for (std::int64_t i = 0; i < groups[k].numel; ++i) b.as<float>()[i] = float(groups[k].begin + i);
    grads.wait(grads.write(k, b.data()));
  }
  std::vector<std::vector<float>> results;
  for (std::int64_t max_in_cpu : {std::int64_t(1) << 40, std::int64_t(0), std::int64_t(5000)}) {
    CAPTURE(max_in_cpu);
    // 1 << 40: everything in CPU memory (tier kCpu); 0: all on NVMe; 5000: block 0's three sub-groups in CPU.
    const Tier tier = max_in_cpu > 14000 ? Tier::kCpu : Tier::kNvme;
    OptimizerStates states(tier, groups, nvme, false, max_in_cpu);
    if (max_in_cpu == 5000) {
      CHECK(states.tier_of(0) == Tier::kCpu);
      CHECK(states.tier_of(1) == Tier::kCpu);
      CHECK(states.tier_of(2) == Tier::kCpu);
      CHECK(states.tier_of(3) == Tier::kNvme);
      CHECK(states.nvme_reserved_bytes() >= 12 * 9000);
      CHECK(states.nvme_reserved_bytes() < 12 * 9000 + 6 * 4096);
    }
    states.load(master.data(), nullptr, nullptr);
    std::vector<std::string> trace;
    for (int pass = 0; pass < 2; ++pass)
      states.for_each([&](std::size_t k, float* w, float* m, float* v, const float* g) {
        REQUIRE(g != nullptr);
        for (std::int64_t i = 0; i < states.groups()[k].numel; ++i) {
          w[i] -= 0.5f * g[i];
          m[i] += g[i];
          v[i] = float(k);
        }
      }, &grads, &trace);
    std::vector<float> w(14000), m(14000), v(14000);
    states.save(w.data(), m.data(), v.data());
    CHECK(w[7] == doctest::Approx(7 * 0.25f - 7.0f));
    CHECK(m[13999] == doctest::Approx(2 * 13999.0f));
    w.insert(w.end(), m.begin(), m.end());
    w.insert(w.end(), v.begin(), v.end());
    results.push_back(w);
  }
  CHECK(results[0] == results[1]);
  CHECK(results[0] == results[2]);
}

TEST_CASE("a worker job's captures are released once it has run, while its future is still held") {
  Worker worker;
  auto big = std::make_shared<std::vector<char>>(1 << 20);
  std::weak_ptr<std::vector<char>> watch = big;
  std::shared_future<void> done = worker.post([held = std::move(big)] { (void)held->size(); });
  done.wait();
  CHECK(watch.expired());  // a gradient captured by its offload job is freed when the job ends
  worker.drain();
}

TEST_CASE("the worker runs jobs in order and hands their errors to the waiter") {
  Worker worker;
  std::vector<int> order;
  std::vector<std::shared_future<void>> done;
  for (int i = 0; i < 20; ++i) done.push_back(worker.post([&order, i] { order.push_back(i); }));
  auto failing = worker.post([] { throw Error("disk full while writing params.swp"); });
  done.back().get();
  CHECK_THROWS_WITH(failing.get(), doctest::Contains("disk full"));
  CHECK_THROWS_WITH(worker.drain(), doctest::Contains("disk full"));
  std::vector<int> expect(20);
  std::iota(expect.begin(), expect.end(), 0);
  CHECK(order == expect);
  worker.post([] {}).get();
  worker.drain();  // the failure was reported once
}
