// zinf::optim — Adam/AdamW over fp32 tensors where they live (CPU or GPU).
// Implements: adamw_step(), the one device optimizer of every path whose
// optimizer state is not on the host: stage 0-2's flat buffer (AdamWFlat)
// and the ZeRO engine's per-block master weights. Runs of (parameters,
// gradient, moments) are stepped with torch.optim.AdamW's arithmetic
// (decoupled weight decay; with decoupled = false, torch.optim.Adam's L2
// penalty), weight decay only on each run's `decay` ranges; on CUDA with
// LibTorch >= 2 by torch's fused AdamW kernel (one launch per list), else
// op by op, each run whole. AdamWFlat: the flat-buffer optimizer over it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "core/flat_state.h"
#include "optim/cpu_adam.h"

namespace zinf::optim {

struct AdamWRun {
  torch::Tensor param, grad, exp_avg, exp_avg_sq;  // [n] fp32 each, one device; param and moments updated in place
  std::vector<FlatRange> decay;                    // elements of [0, n) weight decay applies to (sorted, disjoint)
};

// One step of every run with h (lr, betas, eps, weight_decay, adamw,
// bias_correction, step, grad_scale: gradients are used times 1/grad_scale).
// step_tensor: [1] fp32 on the runs' device holding h.step (read by the fused
// kernel). With grad_scale != 1 on CUDA the kernel leaves each gradient
// unscaled in place: a caller must not read it after the step.
void adamw_step(const std::vector<AdamWRun>& runs, const AdamParams& h, const torch::Tensor& step_tensor);

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled = true;  // AdamW; false: Adam with L2 penalty
  // Elements that take no weight decay, sorted and disjoint, in the
  // coordinates of the buffer being stepped; empty: all decay.
  std::vector<FlatRange> no_decay;
};

// Adam/AdamW over one flat fp32 buffer: the whole model's (or a shard's)
// master weights, gradient and both moments are single contiguous tensors,
// so a step is a handful of tensor ops or one fused kernel.
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
  std::vector<FlatRange> decay_;  // the elements that decay
  std::int64_t step_ = 0;
};

}  // namespace zinf::optim
