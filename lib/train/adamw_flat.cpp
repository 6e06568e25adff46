// zinf::train — flat AdamW.
#include "train/adamw_flat.h"

#include <cmath>

#include "core/error.h"

namespace zinf::train {

AdamWFlat::AdamWFlat(torch::Tensor params, const AdamWOptions& options) : params_(std::move(params)), options_(options) {
  if (params_.scalar_type() != torch::kFloat32 || params_.dim() != 1 || !params_.is_contiguous())
    throw Error("AdamWFlat needs a contiguous 1-D fp32 master buffer");
  exp_avg_ = torch::zeros_like(params_);
  exp_avg_sq_ = torch::zeros_like(params_);
  step_tensor_ = torch::zeros({1}, params_.options());
  const std::int64_t n = params_.numel();
  exempt_ = clip_ranges(options_.no_decay, {0, n});
  decay_ = complement_ranges(exempt_, n);
}

void AdamWFlat::set_step_count(std::int64_t step) {
  step_ = step;
  step_tensor_.fill_(double(step));
}

void AdamWFlat::step(const torch::Tensor& grad, double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double b1 = options_.beta1, b2 = options_.beta2, wd = options_.weight_decay;
#if defined(ZINF_WITH_CUDA) && TORCH_VERSION_MAJOR >= 2
  if (params_.is_cuda()) {
    // torch.optim.AdamW(fused=True)'s kernel: one pass over params, grad,
    // moments; two lists when some runs take no weight decay (the kernel
    // only reads the step count, so every run shares step_tensor_).
    step_tensor_.add_(1);
    auto fused = [&](const std::vector<FlatRange>& runs, double decay) {
      if (runs.empty()) return;
      std::vector<torch::Tensor> p, g, m, v, steps(runs.size(), step_tensor_);
      for (const FlatRange& r : runs) {
        p.push_back(params_.narrow(0, r.begin, r.count));
        g.push_back(grad.narrow(0, r.begin, r.count));
        m.push_back(exp_avg_.narrow(0, r.begin, r.count));
        v.push_back(exp_avg_sq_.narrow(0, r.begin, r.count));
      }
      if (options_.decoupled)
        at::_fused_adamw_(p, g, m, v, {}, steps, lr, b1, b2, decay, options_.eps, /*amsgrad=*/false,
                          /*maximize=*/false);
      else
        at::_fused_adam_(p, g, m, v, {}, steps, lr, b1, b2, decay, options_.eps, /*amsgrad=*/false,
                         /*maximize=*/false);
    };
    if (exempt_.empty() || wd == 0) {
      fused({{0, params_.numel()}}, wd);
    } else {
      fused(decay_, wd);
      fused(exempt_, 0.0);
    }
    return;
  }
#endif
  step_tensor_.add_(1);
  torch::Tensor g = grad;
  if (wd != 0 && options_.decoupled) {
    if (exempt_.empty()) params_.mul_(1.0 - lr * wd);
    else
      for (const FlatRange& r : decay_) params_.narrow(0, r.begin, r.count).mul_(1.0 - lr * wd);
  } else if (wd != 0) {
    if (exempt_.empty()) {
      g = grad.add(params_, wd);
    } else {
      g = grad.clone();
      for (const FlatRange& r : decay_) g.narrow(0, r.begin, r.count).add_(params_.narrow(0, r.begin, r.count), wd);
    }
  }
  const double bias1 = 1.0 - std::pow(b1, double(step_));
  const double bias2 = 1.0 - std::pow(b2, double(step_));
  exp_avg_.mul_(b1).add_(g, 1.0 - b1);
  exp_avg_sq_.mul_(b2).addcmul_(g, g, 1.0 - b2);
  const torch::Tensor denom = (exp_avg_sq_.sqrt() / std::sqrt(bias2)).add_(options_.eps);
  params_.addcdiv_(exp_avg_, denom, -lr / bias1);
}

}  // namespace zinf::train
