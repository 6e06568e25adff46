// zinf::optim — fused CPU Adam/AdamW over flat host buffers.
// Implements: adam_step, one pass over fp32 master weights, both moments and
// the gradient (fp32, bf16 or fp16) that reads each once, writes each once,
// and writes the bf16/fp16 copy of the new weights straight into the caller's
// (pinned) upload buffer; l2_norm_squared, the fused gradient norm that also
// detects inf/NaN; the instruction-set dispatch (AVX-512, AVX2+F16C, portable
// scalar) and a way to force one for tests and benchmarks; bf16/fp16
// conversion helpers that round exactly like PyTorch. Work is split across a
// zinf::ThreadPool. No LibTorch here: raw pointers and element counts.
#pragma once

#include <cstdint>
#include <string>

#include "core/flat_state.h"
#include "core/thread_pool.h"

namespace zinf::optim {

// Element type of a 16-bit buffer (gradients in, weights out).
enum class Half16 : std::uint8_t { kBF16, kFP16 };
const char* half16_name(Half16 kind);  // "bf16", "fp16"

// Hyper-parameters of one step, as in torch.optim.AdamW / DeepSpeed's config.
// Doubles, like torch's options: derived constants (1 - beta1, lr / bias
// correction, ...) are computed in double and rounded to float once.
struct AdamParams {
  double lr = 1e-3;
  double beta1 = 0.9;              // in [0, 1)
  double beta2 = 0.999;            // in [0, 1)
  double eps = 1e-8;               // >= 0
  double weight_decay = 0.0;       // >= 0
  bool adamw = true;               // true: decoupled decay p *= 1 - lr*wd (AdamW); false: L2, g += wd*p (Adam)
  bool bias_correction = true;     // DeepSpeed's "bias_correction"
  std::int64_t step = 1;           // 1-based count of this step, for bias correction
  double grad_scale = 1.0;         // > 0; gradients are multiplied by 1/grad_scale before use (fp16 loss
                                   // scale, times max(1, norm/max_norm) to clip; 1 = none)
};

// The buffers of one step. All hold `n` elements; master, exp_avg and
// exp_avg_sq are updated in place and must not overlap each other or the
// others. `out` may be the very same pointer as `grad16` (the gradient buffer
// is then overwritten with the new weights), any other overlap is an error.
struct AdamBuffers {
  std::int64_t n = 0;                   // elements
  float* master = nullptr;              // [n] fp32 weights
  float* exp_avg = nullptr;             // [n] fp32 first moment (m)
  float* exp_avg_sq = nullptr;          // [n] fp32 second moment (v)
  const float* grad = nullptr;          // [n] fp32 gradient; set exactly one of grad / grad16
  const std::uint16_t* grad16 = nullptr;// [n] 16-bit gradient as it comes off the GPU
  Half16 grad16_kind = Half16::kBF16;   // element type of grad16
  std::uint16_t* out = nullptr;         // [n] new weights in out_kind, or null for none
  Half16 out_kind = Half16::kBF16;      // element type of out
  // Elements of [0, n) that take no weight decay (norms, biases,
  // embeddings), sorted and disjoint; null or empty: every element decays.
  // They are stepped exactly as with weight_decay = 0; the others exactly
  // as without the list (runs, not a per-element branch).
  const std::vector<FlatRange>* no_decay = nullptr;
};

// One Adam/AdamW step over the buffers, per element (all in float, in this
// order, identical on every instruction set, so results are bit-identical
// across AVX-512, AVX2 and scalar and do not depend on the thread count):
//   g  = grad * (1/grad_scale)
//   g  = g + wd*p                        (Adam only)
//   p  = p * (1 - lr*wd)                 (AdamW only)
//   m  = m*beta1 + g*(1-beta1)
//   v  = v*beta2 + ((1-beta2)*g)*g
//   d  = sqrt(v) * (1/sqrt(1-beta2^step)) + eps
//   p  = p - (lr/(1-beta1^step)) * (m/d)
//   out = to_half(p)                      (round to nearest even; NaN -> quiet NaN)
// Matches torch.optim.AdamW / Adam (weight_decay as L2) to float rounding.
// Elements in buffers.no_decay run with wd = 0 (p * 1 and g + 0 are exact).
// Throws zinf::Error on bad hyper-parameters or buffers, naming the value.
void adam_step(const AdamParams& params, const AdamBuffers& buffers, ThreadPool& pool = ThreadPool::shared());

// Convenience form of the above for fp32 gradients.
void adam_step(const AdamParams& params, float* master, float* exp_avg, float* exp_avg_sq, const float* grad,
               std::int64_t n, std::uint16_t* out = nullptr, Half16 out_kind = Half16::kBF16,
               ThreadPool& pool = ThreadPool::shared());

// Sum of squares of x[0..n), accumulated in double. The result is finite
// exactly when every element is finite (squares of finite floats cannot
// overflow a double), so one call gives both the norm for clipping and the
// overflow check for loss scaling: `!std::isfinite(l2_norm_squared(...))`.
// Deterministic for given data: chunk boundaries do not depend on the pool.
double l2_norm_squared(const float* x, std::int64_t n, ThreadPool& pool = ThreadPool::shared());
double l2_norm_squared(const std::uint16_t* x, Half16 kind, std::int64_t n, ThreadPool& pool = ThreadPool::shared());

// ---------------------------------------------------------------- instruction sets
enum class Isa : std::uint8_t { kAuto, kScalar, kAvx2, kAvx512 };
const char* isa_name(Isa isa);  // "auto", "scalar", "avx2", "avx512"
// Parses "auto", "scalar", "avx2", "avx512"; throws zinf::Error listing them.
Isa parse_isa(const std::string& name);
// True when this build and this CPU can run `isa` (kAuto and kScalar always).
bool isa_supported(Isa isa);
// The best instruction set this CPU supports.
Isa best_isa();
// The one adam_step / l2_norm_squared use now: best_isa() unless forced.
Isa active_isa();
// Forces an instruction set for every later call in the process (tests,
// benchmarks); kAuto returns to automatic choice. Throws zinf::Error when the
// CPU or the build lacks it.
void force_isa(Isa isa);

// ---------------------------------------------------------------- conversions
// Exactly as PyTorch's c10::BFloat16 / c10::Half constructors round:
// to nearest even, overflow to inf, NaN -> 0x7FC0 (bf16) / sign|0x7E00 (fp16).
std::uint16_t float_to_bf16(float f);
std::uint16_t float_to_fp16(float f);
float bf16_to_float(std::uint16_t h);
float fp16_to_float(std::uint16_t h);

}  // namespace zinf::optim
