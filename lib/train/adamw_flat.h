// zinf::train — Adam/AdamW over one flat fp32 buffer.
// Implements: AdamWFlat, the optimizer of stage none: the whole model's fp32
// master weights, gradient and both moments are single contiguous tensors, so
// a step is a handful of tensor ops (or one fused kernel on CUDA with
// LibTorch >= 2) instead of a loop over parameters. The arithmetic is
// torch.optim.AdamW's (decoupled weight decay, bias correction); with
// decoupled = false it is Adam with L2 weight decay, like torch.optim.Adam.
// Weight decay skips the no_decay ranges (norms, biases, embeddings): they
// step as with weight_decay = 0, the rest as without the list.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "core/flat_state.h"

namespace zinf::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled = true;  // AdamW; false: Adam with L2 penalty
  // Elements that take no weight decay, sorted and disjoint, in the
  // coordinates of the buffer being stepped; empty: all decay.
  std::vector<FlatRange> no_decay;
};

class AdamWFlat {
 public:
  // `params` is the [numel] fp32 master buffer, updated in place.
  AdamWFlat(torch::Tensor params, const AdamWOptions& options);

  // One step with learning rate `lr` on gradient `grad` ([numel] fp32).
  void step(const torch::Tensor& grad, double lr);

  std::int64_t step_count() const { return step_; }
  torch::Tensor& exp_avg() { return exp_avg_; }        // [numel] fp32
  torch::Tensor& exp_avg_sq() { return exp_avg_sq_; }  // [numel] fp32
  // After the moments were loaded from a checkpoint.
  void set_step_count(std::int64_t step);

 private:
  torch::Tensor params_, exp_avg_, exp_avg_sq_;
  torch::Tensor step_tensor_;  // [1] fp32 on the device, for the fused CUDA kernel
  AdamWOptions options_;
  // The buffer cut into runs that decay and runs that do not (both sorted;
  // decay_ holds everything when options_.no_decay is empty).
  std::vector<FlatRange> decay_, exempt_;
  std::int64_t step_ = 0;
};

}  // namespace zinf::train
