// zinf::zero — the fused Adam/AdamW update over flat fp32 ranges.
#include "zero/adam_kernel.h"

#include <cmath>
#include <cstring>

namespace zinf::zero {

std::uint16_t to_bf16(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu)) return static_cast<std::uint16_t>((bits >> 16) | 0x40);
  const std::uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding) >> 16);
}

namespace {

struct Coeffs {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, step_size, inv_bc2_sqrt, eps, decay, l2, gs;
};

// Out: 0 = master only, 1 = also fp32 copy, 2 = also bf16 copy. One loop per
// variant so none carries a branch and each vectorises.
template <int Out>
void adam_loop(float* __restrict master, float* __restrict m, float* __restrict v, const float* __restrict grad,
               std::int64_t n, const Coeffs c, float* __restrict out_f32, std::uint16_t* __restrict out_bf16) {
  for (std::int64_t i = 0; i < n; ++i) {
    float p = master[i];
    const float g = grad[i] * c.gs + c.l2 * p;
    p *= c.decay;
    const float mi = c.beta1 * m[i] + c.one_minus_beta1 * g;
    const float vi = c.beta2 * v[i] + c.one_minus_beta2 * g * g;
    const float denom = std::sqrt(vi) * c.inv_bc2_sqrt + c.eps;
    p -= c.step_size * (mi / denom);
    m[i] = mi;
    v[i] = vi;
    master[i] = p;
    if constexpr (Out == 1) out_f32[i] = p;
    if constexpr (Out == 2) {
      std::uint32_t bits;
      std::memcpy(&bits, &p, 4);
      out_bf16[i] = static_cast<std::uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    }
  }
}

}  // namespace

void adam_update(float* master, float* m, float* v, const float* grad, std::int64_t n, const AdamHyper& h,
                 float* out_f32, std::uint16_t* out_bf16) {
  Coeffs c;
  c.beta1 = float(h.beta1);
  c.beta2 = float(h.beta2);
  c.one_minus_beta1 = float(1.0 - h.beta1);
  c.one_minus_beta2 = float(1.0 - h.beta2);
  const double bc1 = 1.0 - std::pow(h.beta1, double(h.step));
  const double bc2 = 1.0 - std::pow(h.beta2, double(h.step));
  c.step_size = float(h.lr / bc1);
  c.inv_bc2_sqrt = float(1.0 / std::sqrt(bc2));
  c.eps = float(h.eps);
  c.decay = h.adamw ? float(1.0 - h.lr * h.weight_decay) : 1.0f;
  c.l2 = h.adamw ? 0.0f : float(h.weight_decay);
  c.gs = float(h.grad_scale);
  if (out_bf16) {
    adam_loop<2>(master, m, v, grad, n, c, nullptr, out_bf16);
    // NaN weights must stay NaN in bf16 (the fast rounding above could make
    // them infinite); only a diverged run has them, so fix them afterwards.
    for (std::int64_t i = 0; i < n; ++i)
      if (std::isnan(master[i])) out_bf16[i] = to_bf16(master[i]);
  } else if (out_f32) {
    adam_loop<1>(master, m, v, grad, n, c, out_f32, nullptr);
  } else {
    adam_loop<0>(master, m, v, grad, n, c, nullptr, nullptr);
  }
}

}  // namespace zinf::zero
