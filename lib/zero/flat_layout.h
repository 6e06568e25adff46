// zinf::zero — where each tensor lives inside a flat buffer, and which part
// of that buffer each rank owns.
// Implements: FlatLayout, the offsets of a block's tensors inside one
// contiguous buffer (each aligned so vectorised kernels and O_DIRECT-sized
// copies never split an element group), padded so it divides evenly into
// world_size shards; and Shard, the [begin, end) element range rank r owns.
// This is the arithmetic behind "flat buffers" (DESIGN.md): every transfer,
// collective, swap and optimizer step is one contiguous range of these.
// Pure arithmetic: no tensors, no Torch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zinf::zero {

struct Shard {
  std::int64_t begin = 0;  // elements, inclusive
  std::int64_t end = 0;    // elements, exclusive
  std::int64_t size() const { return end - begin; }
};

struct TensorSlot {
  std::string name;            // "blocks.3.attn.qkv.weight"
  std::vector<std::int64_t> shape;
  std::int64_t numel = 0;      // product of shape
  std::int64_t offset = 0;     // elements from the start of the flat buffer
};

class FlatLayout {
 public:
  // `align` (elements) applies to every tensor's offset and to the shard size.
  FlatLayout(int world_size, std::int64_t align = 64);

  // Appends a tensor; returns its slot index.
  std::size_t add(const std::string& name, const std::vector<std::int64_t>& shape);

  const std::vector<TensorSlot>& slots() const { return slots_; }
  int world_size() const { return world_size_; }
  // Elements used by tensors (no padding).
  std::int64_t numel() const { return numel_; }
  // Elements of the padded buffer: a multiple of world_size * align.
  std::int64_t padded_numel() const;
  // Elements each rank owns (padded_numel / world_size).
  std::int64_t shard_numel() const { return padded_numel() / world_size_; }
  Shard shard(int rank) const;
  // The part of slot `i` that falls inside rank's shard (may be empty), in
  // flat-buffer coordinates.
  Shard overlap(std::size_t slot, int rank) const;

 private:
  int world_size_;
  std::int64_t align_;
  std::int64_t end_ = 0;   // next free offset
  std::int64_t numel_ = 0;
  std::vector<TensorSlot> slots_;
};

}  // namespace zinf::zero
