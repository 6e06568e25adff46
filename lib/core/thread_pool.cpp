// zinf::core — persistent thread pool (see thread_pool.h).
// Implements: worker start/stop, the generation handshake that hands a loop
// to the workers, dynamic chunk hand-out through one atomic counter, and
// first-exception propagation.
#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <string>

#include "core/error.h"

namespace zinf {

namespace {
// Set while a thread runs chunks of some pool's loop: nested loops run inline.
thread_local bool t_inside_loop = false;
}  // namespace

struct ThreadPool::Job {
  const RangeFn* fn = nullptr;
  std::int64_t n = 0;
  std::int64_t chunk = 0;
  std::int64_t chunks = 0;
  std::atomic<std::int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  std::exception_ptr error;
};

ThreadPool::ThreadPool(int threads) {
  if (threads < 0) {
    throw Error("thread pool size " + std::to_string(threads) + " is negative",
                "use 0 for one thread per hardware thread, or a positive count");
  }
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers_.reserve(static_cast<std::size_t>(threads - 1));
  for (int i = 0; i + 1 < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

ThreadPool& ThreadPool::shared() {
  static ThreadPool pool(0);
  return pool;
}

void ThreadPool::run_chunks(Job& job) {
  const bool was_inside = t_inside_loop;
  t_inside_loop = true;
  for (;;) {
    if (job.failed.load(std::memory_order_relaxed)) break;
    const std::int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.chunks) break;
    const std::int64_t begin = c * job.chunk;
    const std::int64_t end = std::min(job.n, begin + job.chunk);
    try {
      (*job.fn)(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(job.error_mu);
      if (!job.error) job.error = std::current_exception();
      job.failed.store(true, std::memory_order_relaxed);
    }
  }
  t_inside_loop = was_inside;
}

void ThreadPool::worker_loop(int /*index*/) {
  std::uint64_t seen = 0;
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    run_chunks(*job);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++checked_in_;
    }
    done_.notify_one();
  }
}

void ThreadPool::parallel_for(std::int64_t n, std::int64_t chunk, const RangeFn& fn) {
  if (n < 0 || chunk <= 0) {
    throw Error("parallel_for over " + std::to_string(n) + " elements in chunks of " + std::to_string(chunk),
                "the element count must be >= 0 and the chunk size > 0");
  }
  if (n == 0) return;
  // One chunk, no workers, or already inside a loop: run here, in order.
  if (n <= chunk || workers_.empty() || t_inside_loop) {
    const bool was_inside = t_inside_loop;
    t_inside_loop = true;
    try {
      for (std::int64_t begin = 0; begin < n; begin += chunk) fn(begin, std::min(n, begin + chunk));
    } catch (...) {
      t_inside_loop = was_inside;
      throw;
    }
    t_inside_loop = was_inside;
    return;
  }

  std::lock_guard<std::mutex> submit(submit_mu_);
  Job job;
  job.fn = &fn;
  job.n = n;
  job.chunk = chunk;
  job.chunks = (n + chunk - 1) / chunk;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &job;
    checked_in_ = 0;
    ++generation_;
  }
  wake_.notify_all();
  run_chunks(job);
  {
    // Every worker must check in before `job` goes out of scope: a worker that
    // woke late still reads it (and finds no chunks left).
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return checked_in_ == static_cast<int>(workers_.size()); });
    job_ = nullptr;
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace zinf
