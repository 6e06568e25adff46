// core: ThreadPool covers every element once in fixed chunks, propagates
// exceptions, runs nested loops inline and rejects bad sizes.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

using zinf::ThreadPool;

TEST_CASE("parallel_for visits every index exactly once in chunks fixed by n and chunk") {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    CHECK(pool.threads() == threads);
    for (std::int64_t n : {std::int64_t(1), std::int64_t(7), std::int64_t(1000), std::int64_t(100003)}) {
      for (std::int64_t chunk : {std::int64_t(1), std::int64_t(64), std::int64_t(4096)}) {
        CAPTURE(threads);
        CAPTURE(n);
        CAPTURE(chunk);
        std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
        std::atomic<int> bad_chunks{0};
        pool.parallel_for(n, chunk, [&](std::int64_t begin, std::int64_t end) {
          if (begin % chunk != 0 || (end != n && end - begin != chunk)) ++bad_chunks;
          for (std::int64_t i = begin; i < end; ++i) hits[static_cast<std::size_t>(i)]++;
        });
        int wrong = 0;
        for (auto& h : hits) wrong += h.load() != 1;
        CHECK(wrong == 0);
        CHECK(bad_chunks == 0);
      }
    }
  }
}

TEST_CASE("parallel_for runs chunks on several threads when the pool has them") {
  ThreadPool pool(3);
  std::mutex mu;
  std::set<std::thread::id> ids;
  pool.parallel_for(3000, 1, [&](std::int64_t, std::int64_t) {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  CHECK(ids.size() > 1);
  CHECK(ids.size() <= 3);
}

TEST_CASE("parallel_for rethrows the first exception and the pool stays usable") {
  ThreadPool pool(4);
  CHECK_THROWS_WITH_AS(pool.parallel_for(1000, 10,
                                         [](std::int64_t begin, std::int64_t) {
                                           if (begin == 500) throw std::runtime_error("chunk 50 failed");
                                         }),
                       "chunk 50 failed", std::runtime_error);
  std::atomic<std::int64_t> sum{0};
  pool.parallel_for(1000, 10, [&](std::int64_t begin, std::int64_t end) { sum += end - begin; });
  CHECK(sum == 1000);
}

TEST_CASE("a parallel_for inside a parallel_for runs inline instead of deadlocking") {
  ThreadPool pool(2);
  std::atomic<std::int64_t> total{0};
  pool.parallel_for(8, 1, [&](std::int64_t, std::int64_t) {
    pool.parallel_for(100, 10, [&](std::int64_t begin, std::int64_t end) { total += end - begin; });
  });
  CHECK(total == 800);
}

TEST_CASE("ThreadPool rejects negative sizes and bad loop bounds") {
  CHECK_THROWS_WITH_AS(ThreadPool(-1), "thread pool size -1 is negative", zinf::Error);
  ThreadPool pool(2);
  CHECK_THROWS_AS(pool.parallel_for(-1, 10, [](std::int64_t, std::int64_t) {}), zinf::Error);
  CHECK_THROWS_AS(pool.parallel_for(10, 0, [](std::int64_t, std::int64_t) {}), zinf::Error);
  int calls = 0;
  pool.parallel_for(0, 10, [&](std::int64_t, std::int64_t) { ++calls; });
  CHECK(calls == 0);
  CHECK(ThreadPool::shared().threads() >= 1);
  CHECK(ThreadPool(0).threads() == static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}
