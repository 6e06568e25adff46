// zinf::offload — the transfer worker.
#include "offload/worker.h"

namespace zinf::offload {

Worker::Worker() : thread_([this] { loop(); }) {}

Worker::~Worker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_future<void> Worker::post(std::function<void()> job) {
  std::packaged_task<void()> task(std::move(job));
  std::future<void> result = task.get_future();
  std::shared_future<void> shared = result.share();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(task));
    pending_.push_back(shared);
  }
  cv_.notify_one();
  return shared;
}

void Worker::drain() {
  std::deque<std::shared_future<void>> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending.swap(pending_);
  }
  for (auto& f : pending) f.wait();
  for (auto& f : pending) f.get();  // rethrows the first failure
}

void Worker::loop() {
  for (;;) {
    std::packaged_task<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();  // exceptions land in the future
  }
}

}  // namespace zinf::offload
