// zinf — the shape of a staging-buffer pool.
#include "core/pool_shape.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace zinf {

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

}  // namespace zinf
