// zinf::core — the next-token target that trains nothing.
// Implements: kIgnoreTarget, what the data hands out as the target of a
// position whose prediction adds no loss (a fine-tuning example's prompt,
// the padding after a document that ends inside its window). It is PyTorch's
// cross_entropy ignore_index default; the model's losses name it explicitly.
#pragma once

#include <cstdint>

namespace zinf {

constexpr std::int64_t kIgnoreTarget = -100;

}  // namespace zinf
