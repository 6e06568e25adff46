// zinf::zero — flat buffer layout and per-rank shards.
#include "zero/flat_layout.h"

#include <algorithm>

#include "core/error.h"
#include "core/units.h"

namespace zinf::zero {

FlatLayout::FlatLayout(int world_size, std::int64_t align) : world_size_(world_size), align_(align) {
  if (world_size < 1) throw Error("flat layout: world size must be >= 1, got " + std::to_string(world_size));
  if (align < 1) throw Error("flat layout: alignment must be >= 1 element, got " + std::to_string(align));
}

std::size_t FlatLayout::add(const std::string& name, const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto d : shape) {
    if (d < 0) throw Error("flat layout: tensor '" + name + "' has a negative dimension");
    n *= d;
  }
  TensorSlot slot{name, shape, n, round_up(end_, align_)};
  end_ = slot.offset + n;
  numel_ += n;
  slots_.push_back(std::move(slot));
  return slots_.size() - 1;
}

std::int64_t FlatLayout::padded_numel() const {
  const std::int64_t unit = align_ * world_size_;
  return std::max<std::int64_t>(unit, round_up(end_, unit));
}

Shard FlatLayout::shard(int rank) const {
  if (rank < 0 || rank >= world_size_)
    throw Error("flat layout: rank " + std::to_string(rank) + " outside world size " + std::to_string(world_size_));
  const std::int64_t n = shard_numel();
  return {rank * n, (rank + 1) * n};
}

Shard FlatLayout::overlap(std::size_t slot, int rank) const {
  const TensorSlot& s = slots_.at(slot);
  const Shard mine = shard(rank);
  const std::int64_t b = std::max(mine.begin, s.offset), e = std::min(mine.end, s.offset + s.numel);
  return e > b ? Shard{b, e} : Shard{b, b};
}

}  // namespace zinf::zero
