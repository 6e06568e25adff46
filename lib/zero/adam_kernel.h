// zinf::zero — the fused Adam/AdamW update over flat fp32 ranges.
// Implements: adam_update(), one pass that reads the fp32 master weights,
// both moments and the gradient once, writes them once, and optionally writes
// the updated weights as fp32 or bf16 into a second buffer (the pinned upload
// buffer or the parameters' home). Plain loops over restrict pointers that
// the compiler vectorises at -O2/-O3; the engine splits ranges over threads.
// The arithmetic follows LibTorch's AdamW/Adam step by step (decay, moments,
// bias corrections, sqrt(v)/sqrt(bc2) + eps), so results agree to float
// rounding. A stand-in until lib/optim's CpuAdam (AVX-512/AVX2 dispatch)
// lands; the engine calls only this function.
#pragma once

#include <cstdint>

namespace zinf::zero {

struct AdamHyper {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool adamw = true;       // decoupled weight decay; false: L2 added to the gradient
  std::int64_t step = 1;   // 1-based step number, for the bias corrections
  double grad_scale = 1.0; // multiplies every gradient (1/loss_scale x clip coefficient)
};

// n elements. out_f32 / out_bf16 (either may be null): the updated weights.
void adam_update(float* master, float* m, float* v, const float* grad, std::int64_t n, const AdamHyper& h,
                 float* out_f32, std::uint16_t* out_bf16);

// Round-to-nearest-even fp32 -> bf16 (NaN stays NaN).
std::uint16_t to_bf16(float x);

}  // namespace zinf::zero
