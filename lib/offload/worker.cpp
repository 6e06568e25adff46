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
  Job j{std::move(job), {}};
  std::shared_future<void> shared = j.done.get_future().share();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(j));
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
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    std::exception_ptr error;
    try {
      job.fn();
    } catch (...) {
      error = std::current_exception();  // lands in the future
    }
    job.fn = nullptr;  // what the job captured goes now, before anyone is told it is done
    if (error) job.done.set_exception(error);
    else job.done.set_value();
  }
}

}  // namespace zinf::offload
