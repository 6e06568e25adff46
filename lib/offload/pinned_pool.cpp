// zinf::offload — the pinned staging-buffer pool.
#include "offload/pinned_pool.h"

#include <algorithm>

#include "core/error.h"
#include "core/units.h"

namespace zinf::offload {


PoolShape pool_shape(std::int64_t buffer_count, std::int64_t buffer_size, std::int64_t elem_bytes,
                     const std::vector<std::int64_t>& block_numels, std::int64_t granule) {
  if (buffer_count < 1)
    throw UsageError("zero_optimization.offload_param.buffer_count is " + std::to_string(buffer_count),
                     "use at least 1 (DeepSpeed's default is 5)");
  if (buffer_size < 0)
    throw UsageError("zero_optimization.offload_param.buffer_size is " + std::to_string(buffer_size),
                     "use a positive element count or \"auto\"");
  std::int64_t largest = 1;
  for (std::int64_t n : block_numels) largest = std::max(largest, n);
  const std::int64_t largest_bytes = largest * elem_bytes;
  const std::int64_t want = buffer_size > 0 ? buffer_size * elem_bytes : kAutoBufferBytes;
  PoolShape s;
  s.buffer_bytes = want >= largest_bytes ? largest_bytes : std::max(granule, want / granule * granule);
  s.buffer_bytes = std::min(s.buffer_bytes, largest_bytes);
  std::int64_t pieces = 0;
  for (std::int64_t n : block_numels) pieces += pieces_of(s, n * elem_bytes);
  s.count = std::min<std::int64_t>(buffer_count, std::max<std::int64_t>(1, pieces));
  return s;
}

std::int64_t pieces_of(const PoolShape& shape, std::int64_t bytes) {
  return std::max<std::int64_t>(1, (bytes + shape.buffer_bytes - 1) / shape.buffer_bytes);
}

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
