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

#include "io/aligned_buffer.h"

namespace zinf::offload {

struct PoolShape {
  std::int64_t count = 0;         // buffers
  std::int64_t buffer_bytes = 0;  // bytes per buffer
};

// What buffer_size 0 ("auto") means: 32 MiB per buffer, large enough for
// full-speed NVMe requests, small enough that the pool never dominates RAM.
constexpr std::int64_t kAutoBufferBytes = std::int64_t(32) << 20;

// buffer_count x buffer_size (elements of elem_bytes each; 0 = auto), shrunk
// to what is needed: none larger than the largest block, no more buffers than
// the blocks have pieces. A block larger than a buffer streams through in
// pieces of buffer_bytes, which is then a multiple of `granule` (the aio
// block size: O_DIRECT and per-block checksums need aligned pieces). Throws
// UsageError when buffer_count < 1.
PoolShape pool_shape(std::int64_t buffer_count, std::int64_t buffer_size, std::int64_t elem_bytes,
                     const std::vector<std::int64_t>& block_numels, std::int64_t granule = 4096);

// Pieces of `bytes` in buffers of `shape` (at least 1).
std::int64_t pieces_of(const PoolShape& shape, std::int64_t bytes);

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
