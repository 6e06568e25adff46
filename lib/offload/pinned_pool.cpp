// zinf::offload — the pinned staging-buffer pool.
#include "offload/pinned_pool.h"

#include <algorithm>

#include "core/error.h"
#include "core/units.h"

namespace zinf::offload {

PinnedPool::PinnedPool(PoolShape shape, bool pin) : shape_(shape) {
  for (std::int64_t i = 0; i < shape.count; ++i) {
    buffers_.emplace_back(shape.buffer_bytes, io::kDirectAlignment, pin);
    free_.push_back(static_cast<int>(i));
  }
}

PinnedPool::Lease& PinnedPool::Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    reset();
    pool_ = o.pool_;
    index_ = o.index_;
    o.pool_ = nullptr;
  }
  return *this;
}

void PinnedPool::Lease::reset() {
  if (pool_) pool_->give_back(index_);
  pool_ = nullptr;
}

void* PinnedPool::Lease::data() const { return pool_->buffers_[index_].data(); }
std::int64_t PinnedPool::Lease::bytes() const { return pool_->shape_.buffer_bytes; }

PinnedPool::Lease PinnedPool::acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !free_.empty(); });
  const int index = free_.back();
  free_.pop_back();
  return Lease(this, index);
}

void PinnedPool::give_back(int index) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(index);
  }
  cv_.notify_one();
}

std::int64_t PinnedPool::total_bytes() const {
  std::int64_t total = 0;
  for (const auto& b : buffers_) total += b.size();
  return total;
}

std::int64_t PinnedPool::in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count() - static_cast<std::int64_t>(free_.size());
}

}  // namespace zinf::offload
