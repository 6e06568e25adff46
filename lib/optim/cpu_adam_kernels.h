// zinf::optim — internals of the CPU Adam shared by its per-ISA source files.
// Implements: the float constants of one step (AdamConsts), the raw argument
// block the kernels see (AdamArgs), the scalar per-element update and the
// exact bf16/fp16 conversions (used by the scalar kernel and by the vector
// kernels for their tails, so every path computes the same bits), and the
// entry points of the scalar, AVX2 and AVX-512 kernels. Not a public header:
// only lib/optim/cpu_adam*.cpp include it. These files are compiled with
// -ffp-contract=off so no compiler fuses a multiply and an add differently
// on different paths.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace zinf::optim::detail {

enum class GradKind : std::uint8_t { kF32, kBF16, kFP16 };
enum class OutKind : std::uint8_t { kNone, kBF16, kFP16 };

// Per-step constants, each computed in double and rounded to float once.
struct AdamConsts {
  float inv_grad_scale;  // 1 / grad_scale
  float l2;              // weight decay added to the gradient (Adam only)
  bool use_l2;           // Adam with weight decay
  float decay;           // 1 - lr*wd for AdamW, else exactly 1 (p*1 == p)
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float inv_sqrt_bc2;    // 1 / sqrt(1 - beta2^step), 1 without bias correction
  float eps;
  float step_size;       // lr / (1 - beta1^step)
};

struct AdamArgs {
  float* master;                // [n]
  float* m;                     // [n]
  float* v;                     // [n]
  const void* grad;             // [n] float or uint16_t, per grad_kind
  GradKind grad_kind;
  std::uint16_t* out;           // [n] or null when out_kind == kNone
  OutKind out_kind;
};

// ---------------------------------------------------------------- conversions
inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// c10::BFloat16's round_to_nearest_even.
inline std::uint16_t to_bf16(float f) {
  if (std::isnan(f)) return 0x7FC0;
  const std::uint32_t u = float_bits(f);
  return static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// IEEE binary16, round to nearest even (F. Giesen's float_to_half_fast3_rtne);
// same bits as c10::Half's fp16_ieee_from_fp32_value, NaN -> sign|0x7E00.
inline std::uint16_t to_fp16(float f) {
  std::uint32_t u = float_bits(f);
  const std::uint32_t sign = u & 0x80000000u;
  u ^= sign;
  std::uint16_t o;
  if (u >= (127u + 16u) << 23) {                 // >= 65536, inf or NaN
    o = u > 0x7F800000u ? 0x7E00 : 0x7C00;
  } else if (u < 113u << 23) {                   // below 2^-14: subnormal half or zero
    const float magic = bits_float(((127u - 15u) + (23u - 10u) + 1u) << 23);  // 0.5
    o = static_cast<std::uint16_t>(float_bits(bits_float(u) + magic) - float_bits(magic));
  } else {                                       // normal half (65520.. rounds up to inf)
    const std::uint32_t mant_odd = (u >> 13) & 1u;
    u += (static_cast<std::uint32_t>(15 - 127) << 23) + 0xFFFu;
    u += mant_odd;
    o = static_cast<std::uint16_t>(u >> 13);
  }
  return static_cast<std::uint16_t>(o | (sign >> 16));
}

inline float from_bf16(std::uint16_t h) { return bits_float(static_cast<std::uint32_t>(h) << 16); }

inline float from_fp16(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  const std::uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
  // zero or subnormal: mant * 2^-24, exact in float
  const float mag = static_cast<float>(mant) * bits_float(0x33800000u);  // 2^-24
  return sign ? -mag : mag;
}

// ---------------------------------------------------------------- scalar update
// The reference order of operations; the vector kernels do exactly this.
inline float adam_update(const AdamConsts& c, float& p, float& m, float& v, float g) {
  g = g * c.inv_grad_scale;
  if (c.use_l2) g = g + c.l2 * p;
  float pn = p * c.decay;
  const float mn = m * c.beta1 + g * c.one_minus_beta1;
  const float vn = v * c.beta2 + (c.one_minus_beta2 * g) * g;
  const float d = std::sqrt(vn) * c.inv_sqrt_bc2 + c.eps;
  pn = pn - c.step_size * (mn / d);
  p = pn;
  m = mn;
  v = vn;
  return pn;
}

inline float load_grad_scalar(const AdamArgs& a, std::int64_t i) {
  switch (a.grad_kind) {
    case GradKind::kF32: return static_cast<const float*>(a.grad)[i];
    case GradKind::kBF16: return from_bf16(static_cast<const std::uint16_t*>(a.grad)[i]);
    case GradKind::kFP16: return from_fp16(static_cast<const std::uint16_t*>(a.grad)[i]);
  }
  return 0.0f;
}

// Elements [begin, end) one at a time. The vector kernels call this for tails.
inline void adam_range_scalar(const AdamConsts& c, const AdamArgs& a, std::int64_t begin, std::int64_t end) {
  for (std::int64_t i = begin; i < end; ++i) {
    const float g = load_grad_scalar(a, i);  // read before `out` is written (out may alias grad16)
    const float p = adam_update(c, a.master[i], a.m[i], a.v[i], g);
    if (a.out_kind == OutKind::kBF16) a.out[i] = to_bf16(p);
    else if (a.out_kind == OutKind::kFP16) a.out[i] = to_fp16(p);
  }
}

inline double sumsq_range_scalar(const float* x, std::int64_t n) {
  double s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}
inline double sumsq_range_scalar(const std::uint16_t* x, bool bf16, std::int64_t n) {
  double s = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double f = bf16 ? from_bf16(x[i]) : from_fp16(x[i]);
    s += f * f;
  }
  return s;
}

// ---------------------------------------------------------------- kernel entry points
// Each updates elements [begin, end) of `a`. Defined in cpu_adam.cpp (scalar),
// cpu_adam_avx2.cpp and cpu_adam_avx512.cpp (x86-64 builds only).
void adam_scalar(const AdamConsts& c, const AdamArgs& a, std::int64_t begin, std::int64_t end);
double sumsq_f32_scalar(const float* x, std::int64_t n);
double sumsq_16_scalar(const std::uint16_t* x, bool bf16, std::int64_t n);
#if defined(ZINF_X86_KERNELS)
void adam_avx2(const AdamConsts& c, const AdamArgs& a, std::int64_t begin, std::int64_t end);
double sumsq_f32_avx2(const float* x, std::int64_t n);
double sumsq_16_avx2(const std::uint16_t* x, bool bf16, std::int64_t n);
void adam_avx512(const AdamConsts& c, const AdamArgs& a, std::int64_t begin, std::int64_t end);
double sumsq_f32_avx512(const float* x, std::int64_t n);
double sumsq_16_avx512(const std::uint16_t* x, bool bf16, std::int64_t n);
#endif

}  // namespace zinf::optim::detail
