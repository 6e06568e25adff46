// zinf::model — activation checkpointing for one block.
// Implements: checkpointed(), a custom autograd function that runs a block
// without keeping its graph, saves only the block's input, and in backward
// recomputes the block with grad enabled and back-propagates through it
// (LibTorch C++ has no torch.utils.checkpoint). The hooks are where the
// ZeRO-3 engine plugs in: `acquire` before each of the two computations
// (gather / swap in the block's parameters), `release` after each, and
// `on_grads` with the block's parameter gradients once backward has them.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <vector>

namespace zinf::model {

// y = fn(x, params): must be deterministic (no dropout), so the recomputation
// in backward equals the forward.
using BlockFn = std::function<torch::Tensor(const torch::Tensor& x, const std::vector<torch::Tensor>& params)>;

struct BlockHooks {
  std::function<void()> acquire;                                     // before forward / recompute
  std::function<void()> release;                                     // after forward / recompute
  std::function<void(const std::vector<torch::Tensor>& grads)> on_grads;  // [params.size()] in backward
};

// Runs fn(x, params) under activation checkpointing. Gradients flow to x and
// to every params[i] that requires grad. `fn` and `hooks` are copied and kept
// alive by the autograd graph.
torch::Tensor checkpointed(BlockFn fn, const torch::Tensor& x, const std::vector<torch::Tensor>& params,
                           BlockHooks hooks = {});

}  // namespace zinf::model
