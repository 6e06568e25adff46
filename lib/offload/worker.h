// zinf::offload — the transfer worker.
// Implements: Worker, one background thread running jobs in the order they
// were posted, each job's completion (and exception) delivered through a
// std::future. A job is destroyed as soon as it has run: the future holds no
// reference to it, so what it captured (a block's gradient on the device, a
// fetch's buffers) is freed then, not when the future is dropped. The engine posts prefetches (NVMe -> pinned -> device) and
// gradient offloads (device -> host accumulator) to it so they overlap the
// compute thread; in CUDA builds the jobs issue their copies on side streams,
// on CPU builds the thread itself is the overlap, so CI tests the same logic.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace zinf::offload {

class Worker {
 public:
  Worker();
  // Runs what is queued, then joins.
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  std::shared_future<void> post(std::function<void()> job);
  // Blocks until every job posted so far has run; rethrows the first error
  // of a job nobody waited for.
  void drain();

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  struct Job {
    std::function<void()> fn;
    std::promise<void> done;
  };
  std::deque<Job> queue_;
  std::deque<std::shared_future<void>> pending_;  // futures not yet drained
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace zinf::offload
