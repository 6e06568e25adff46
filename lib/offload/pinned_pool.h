// zinf::offload — the pinned staging-buffer pool.
// Implements: PinnedPool, `count` equal host buffers (page-locked in CUDA
// builds, 4096-aligned always) that NVMe reads land in and device uploads
// leave from; acquire() blocks until one is free, and a Lease hands it back
// when it goes out of scope. pool_shape() sizes the pool from the config's
// buffer_count x buffer_size, never larger than what the blocks need.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "core/pool_shape.h"
#include "io/aligned_buffer.h"

namespace zinf::offload {

// The pool's shape and its sizing rule live in core (the planner counts
// them too); offload::PoolShape, pool_shape() and pieces_of() are those.
using zinf::kAutoBufferBytes;
using zinf::pieces_of;
using zinf::pool_shape;
using zinf::PoolShape;

class PinnedPool {
 public:
  PinnedPool(PoolShape shape, bool pin);
  PinnedPool(const PinnedPool&) = delete;
  PinnedPool& operator=(const PinnedPool&) = delete;

  class Lease {
   public:
    Lease() = default;
    Lease(PinnedPool* pool, int index) : pool_(pool), index_(index) {}
    Lease(Lease&& o) noexcept : pool_(o.pool_), index_(o.index_) { o.pool_ = nullptr; }
    Lease& operator=(Lease&& o) noexcept;
    ~Lease() { reset(); }
    void* data() const;
    std::int64_t bytes() const;
    explicit operator bool() const { return pool_ != nullptr; }
    void reset();

   private:
    PinnedPool* pool_ = nullptr;
    int index_ = -1;
  };

  // Blocks until a buffer is free.
  Lease acquire();
  std::int64_t count() const { return static_cast<std::int64_t>(buffers_.size()); }
  std::int64_t buffer_bytes() const { return shape_.buffer_bytes; }
  std::int64_t total_bytes() const;  // bytes actually allocated
  std::int64_t in_use() const;

 private:
  void give_back(int index);
  PoolShape shape_;
  std::vector<io::AlignedBuffer> buffers_;
  std::vector<int> free_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace zinf::offload
