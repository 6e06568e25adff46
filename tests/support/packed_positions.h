// tests/support: positions of a packed row (model::Packing) for model tests.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace zinf::test {

// [1, sum(lengths)] int64: 0..n-1 for each document length n in turn.
inline torch::Tensor packed_positions(const std::vector<std::int64_t>& lengths) {
  std::vector<std::int64_t> p;
  for (const std::int64_t n : lengths)
    for (std::int64_t i = 0; i < n; ++i) p.push_back(i);
  return torch::tensor(p, torch::kInt64).unsqueeze(0);
}

}  // namespace zinf::test
