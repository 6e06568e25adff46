// zinf — the shape of a staging-buffer pool, as arithmetic.
// Implements: PoolShape and pool_shape(), how many buffers of how many bytes
// a pool of buffer_count x buffer_size holds once shrunk to what its blocks
// need, and pieces_of(); the gradient norm's piece size. One definition for
// the engine's buffers (offload::PinnedPool, zero's device optimizer) and
// the planner that counts them (lib/plan), which may not depend on them.
#pragma once

#include <cstdint>
#include <vector>

namespace zinf {

struct PoolShape {
  std::int64_t count = 0;         // buffers
  std::int64_t buffer_bytes = 0;  // bytes per buffer
};

// Elements per piece of the device optimizer's gradient norm: the engine
// squares and sums the owned gradients this many at a time, so its
// temporaries (the fp32 square and its fp64 widening, 12 bytes an element)
// stay small whatever the model; the planner counts one piece.
constexpr std::int64_t kNormPieceElements = std::int64_t(1) << 24;

// Host memory of a swap file's checksum table (io::SwapFile): one CRC32C of
// 4 bytes per 4096-byte page of `file_bytes` (0.1%).
inline std::int64_t swap_checksum_table_bytes(std::int64_t file_bytes) {
  return file_bytes <= 0 ? 0 : (file_bytes + 4095) / 4096 * 4;
}

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

}  // namespace zinf
