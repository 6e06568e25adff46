// zinf::optim — AdamW over tensors, and the flat-buffer optimizer.
#include "optim/adamw_tensor.h"

#include <cmath>

#include "core/error.h"

namespace zinf::optim {
namespace {

bool whole(const std::vector<FlatRange>& ranges, std::int64_t n) {
  return ranges.size() == 1 && ranges[0].begin == 0 && ranges[0].count == n;
}

// torch.optim.AdamW's (or Adam's) single-tensor arithmetic, on one run whole.
void step_run(const AdamWRun& r, const AdamParams& h) {
  const std::int64_t n = r.param.numel();
  torch::Tensor g = h.grad_scale == 1.0 ? r.grad : r.grad * (1.0 / h.grad_scale);
  if (h.weight_decay != 0 && !r.decay.empty()) {
    if (h.adamw) {
      if (whole(r.decay, n)) r.param.mul_(1.0 - h.lr * h.weight_decay);
      else
        for (const FlatRange& d : r.decay) r.param.narrow(0, d.begin, d.count).mul_(1.0 - h.lr * h.weight_decay);
    } else if (whole(r.decay, n)) {
      g = g.add(r.param, h.weight_decay);
    } else {
      g = g.clone();
      for (const FlatRange& d : r.decay)
        g.narrow(0, d.begin, d.count).add_(r.param.narrow(0, d.begin, d.count), h.weight_decay);
    }
  }
  const double bias1 = h.bias_correction ? 1.0 - std::pow(h.beta1, double(h.step)) : 1.0;
  const double bias2 = h.bias_correction ? 1.0 - std::pow(h.beta2, double(h.step)) : 1.0;
  r.exp_avg.mul_(h.beta1).add_(g, 1.0 - h.beta1);
  r.exp_avg_sq.mul_(h.beta2).addcmul_(g, g, 1.0 - h.beta2);
  const torch::Tensor denom = (r.exp_avg_sq.sqrt() / std::sqrt(bias2)).add_(h.eps);
  r.param.addcdiv_(r.exp_avg, denom, -h.lr / bias1);
}

}  // namespace

void adamw_step(const std::vector<AdamWRun>& runs, const AdamParams& h, const torch::Tensor& step_tensor) {
  torch::NoGradGuard no_grad;
#if defined(ZINF_WITH_CUDA) && TORCH_VERSION_MAJOR >= 2
  // torch.optim.AdamW(fused=True)'s kernel: one pass over params, grads,
  // moments per list; the pieces that decay and those that do not are two
  // lists (the kernel only reads the step count, so all share step_tensor).
  if (!runs.empty() && runs.front().param.is_cuda() && h.bias_correction) {
    struct Lists {
      std::vector<torch::Tensor> p, g, m, v;
    } decay, exempt;
    auto add = [](Lists& l, const AdamWRun& r, const FlatRange& piece, const torch::Tensor& g) {
      l.p.push_back(r.param.narrow(0, piece.begin, piece.count));
      l.g.push_back(g.narrow(0, piece.begin, piece.count));
      l.m.push_back(r.exp_avg.narrow(0, piece.begin, piece.count));
      l.v.push_back(r.exp_avg_sq.narrow(0, piece.begin, piece.count));
    };
    for (const AdamWRun& r : runs) {
      const std::int64_t n = r.param.numel();
      const torch::Tensor& g = r.grad;  // unscaled by the kernel itself: no copy of the gradients
      if (h.weight_decay == 0) {
        add(decay, r, {0, n}, g);
        continue;
      }
      for (const FlatRange& piece : r.decay) add(decay, r, piece, g);
      for (const FlatRange& piece : complement_ranges(r.decay, n)) add(exempt, r, piece, g);
    }
    // The kernel divides each gradient by grad_scale as it reads it (and
    // leaves the unscaled gradient in place: callers do not read it after the step).
    const c10::optional<torch::Tensor> scale =
        h.grad_scale == 1.0 ? c10::optional<torch::Tensor>() : torch::full({1}, h.grad_scale, step_tensor.options());
    auto fused = [&](Lists& l, double wd) {
      if (l.p.empty()) return;
      const std::vector<torch::Tensor> steps(l.p.size(), step_tensor);
      if (h.adamw)
        at::_fused_adamw_(l.p, l.g, l.m, l.v, {}, steps, h.lr, h.beta1, h.beta2, wd, h.eps, /*amsgrad=*/false,
                          /*maximize=*/false, scale);
      else
        at::_fused_adam_(l.p, l.g, l.m, l.v, {}, steps, h.lr, h.beta1, h.beta2, wd, h.eps, /*amsgrad=*/false,
                         /*maximize=*/false, scale);
    };
    fused(decay, h.weight_decay);
    fused(exempt, 0.0);
    return;
  }
#endif
  (void)step_tensor;
  for (const AdamWRun& r : runs) step_run(r, h);
}

AdamWFlat::AdamWFlat(torch::Tensor params, const AdamWOptions& options) : params_(std::move(params)), options_(options) {
  if (params_.scalar_type() != torch::kFloat32 || params_.dim() != 1 || !params_.is_contiguous())
    throw Error("AdamWFlat needs a contiguous 1-D fp32 master buffer");
  exp_avg_ = torch::zeros_like(params_);
  exp_avg_sq_ = torch::zeros_like(params_);
  step_tensor_ = torch::zeros({1}, params_.options());
  const std::int64_t n = params_.numel();
  decay_ = complement_ranges(clip_ranges(options_.no_decay, {0, n}), n);
}

void AdamWFlat::set_step_count(std::int64_t step) {
  step_ = step;
  step_tensor_.fill_(double(step));
}

void AdamWFlat::step(const torch::Tensor& grad, double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  step_tensor_.add_(1);
  AdamParams h;
  h.lr = lr;
  h.beta1 = options_.beta1;
  h.beta2 = options_.beta2;
  h.eps = options_.eps;
  h.weight_decay = options_.weight_decay;
  h.adamw = options_.decoupled;
  h.step = step_;
  adamw_step({{params_, grad, exp_avg_, exp_avg_sq_, decay_}}, h, step_tensor_);
}

}  // namespace zinf::optim
