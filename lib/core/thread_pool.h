// zinf::core — a small persistent thread pool for data-parallel loops.
// Implements: ThreadPool, which splits [0, n) into contiguous chunks and runs
// them on a fixed set of worker threads plus the calling thread, and
// ThreadPool::shared(), one process-wide pool sized to the machine. Used by the
// CPU optimizer (lib/optim/cpu_adam) and by anything else that streams over
// large flat host buffers (checksums, conversions). Workers sleep between
// loops; a loop smaller than one chunk runs inline without waking anyone.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace zinf {

class ThreadPool {
 public:
  // `threads` counts the calling thread: 1 = run everything inline, no workers.
  // 0 = std::thread::hardware_concurrency(). Negative values are an error.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads that work on a loop, the caller included (>= 1).
  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  using RangeFn = std::function<void(std::int64_t begin, std::int64_t end)>;

  // Calls fn(begin, end) for the chunks [0, chunk), [chunk, 2*chunk), ... of
  // [0, n) (the last may be shorter), handing chunks to threads as they become
  // free; returns when all are done. Which thread runs a chunk is unspecified,
  // the chunk boundaries are not: they depend only on n and chunk. If fn
  // throws, chunks not yet started are skipped and the first exception is
  // rethrown here. Calls from several threads are serialised; a call from
  // inside fn (nested) runs inline on the calling worker.
  void parallel_for(std::int64_t n, std::int64_t chunk, const RangeFn& fn);

  // The process-wide pool: hardware_concurrency() threads, created on first use.
  static ThreadPool& shared();

 private:
  struct Job;
  void worker_loop(int index);
  static void run_chunks(Job& job);

  std::vector<std::thread> workers_;
  std::mutex submit_mu_;          // one loop at a time
  std::mutex mu_;                 // guards the fields below
  std::condition_variable wake_;  // workers wait for a new generation
  std::condition_variable done_;  // the caller waits for workers to check in
  Job* job_ = nullptr;
  std::uint64_t generation_ = 0;
  int checked_in_ = 0;
  bool stop_ = false;
};

}  // namespace zinf
