// zinf::optim — CPU Adam kernels for AVX-512F (16 floats per vector).
// Implements: adam_avx512 (the fused update, 16-bit gradient loads and
// bf16/fp16 stores of the new weights) and sumsq_*_avx512 (sum of squares in
// double). Compiled with -mavx512f -mfma -mf16c -ffp-contract=off (see
// CMakeLists.txt) and only called after cpu_adam.cpp has checked the CPU.
// The Adam update uses no FMA so its bits equal the scalar path's.
#include "optim/cpu_adam_kernels.h"

#if defined(ZINF_X86_KERNELS)
#include <immintrin.h>

namespace zinf::optim::detail {
namespace {

template <GradKind G>
inline __m512 load_grad(const void* grad, std::int64_t i) {
  if constexpr (G == GradKind::kF32) {
    return _mm512_loadu_ps(static_cast<const float*>(grad) + i);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const std::uint16_t*>(grad) + i));
    if constexpr (G == GradKind::kBF16) {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
      return _mm512_cvtph_ps(h);
    }
  }
}

// Round to nearest even like c10::BFloat16; NaN -> 0x7FC0.
inline __m256i to_bf16_vec(__m512 p) {
  const __m512i x = _mm512_castps_si512(p);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7FFF)), lsb), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(p, p, _CMP_UNORD_Q);
  r = _mm512_mask_blend_epi32(nan, r, _mm512_set1_epi32(0x7FC0));
  return _mm512_cvtepi32_epi16(r);
}

// IEEE round to nearest even (F16C); NaN -> sign|0x7E00 like c10::Half.
inline __m256i to_fp16_vec(__m512 p) {
  __m256i h = _mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT);
  const __mmask16 nan = _mm512_cmp_ps_mask(p, p, _CMP_UNORD_Q);
  if (nan) {
    const __m512i x = _mm512_castps_si512(p);
    const __m512i canon = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x8000)),
                                          _mm512_set1_epi32(0x7E00));
    const __m512i wide = _mm512_mask_blend_epi32(nan, _mm512_cvtepu16_epi32(h), canon);
    h = _mm512_cvtepi32_epi16(wide);
  }
  return h;
}

template <GradKind G, OutKind O>
void adam_range(const AdamConsts& c, const AdamArgs& a, std::int64_t begin, std::int64_t end) {
  const __m512 inv_gs = _mm512_set1_ps(c.inv_grad_scale);
  const __m512 l2 = _mm512_set1_ps(c.l2);
  const __m512 decay = _mm512_set1_ps(c.decay);
  const __m512 b1 = _mm512_set1_ps(c.beta1), omb1 = _mm512_set1_ps(c.one_minus_beta1);
  const __m512 b2 = _mm512_set1_ps(c.beta2), omb2 = _mm512_set1_ps(c.one_minus_beta2);
  const __m512 isbc2 = _mm512_set1_ps(c.inv_sqrt_bc2);
  const __m512 eps = _mm512_set1_ps(c.eps);
  const __m512 step = _mm512_set1_ps(c.step_size);
  float* const master = a.master;
  float* const mom = a.m;
  float* const var = a.v;
  std::int64_t i = begin;
  // The 16-bit copy is written, never read here: stream it past the cache
  // (no read-for-ownership, 2 fewer bytes of traffic per parameter) when the
  // stores are aligned, which page-aligned pinned buffers always are.
  const bool stream = O != OutKind::kNone && (reinterpret_cast<std::uintptr_t>(a.out + begin) % 32) == 0;
  for (; i + 16 <= end; i += 16) {
    __m512 g = _mm512_mul_ps(load_grad<G>(a.grad, i), inv_gs);
    __m512 p = _mm512_loadu_ps(master + i);
    __m512 m = _mm512_loadu_ps(mom + i);
    __m512 v = _mm512_loadu_ps(var + i);
    if (c.use_l2) g = _mm512_add_ps(g, _mm512_mul_ps(l2, p));
    p = _mm512_mul_ps(p, decay);
    m = _mm512_add_ps(_mm512_mul_ps(m, b1), _mm512_mul_ps(g, omb1));
    v = _mm512_add_ps(_mm512_mul_ps(v, b2), _mm512_mul_ps(_mm512_mul_ps(omb2, g), g));
    const __m512 d = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(v), isbc2), eps);
    p = _mm512_sub_ps(p, _mm512_mul_ps(step, _mm512_div_ps(m, d)));
    _mm512_storeu_ps(master + i, p);
    _mm512_storeu_ps(mom + i, m);
    _mm512_storeu_ps(var + i, v);
    if constexpr (O == OutKind::kBF16) {
      const auto h = to_bf16_vec(p);
      if (stream) {
        _mm256_stream_si256(reinterpret_cast<__m256i*>(a.out + i), h);
      } else {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.out + i), h);
      }
    } else if constexpr (O == OutKind::kFP16) {
      const auto h = to_fp16_vec(p);
      if (stream) {
        _mm256_stream_si256(reinterpret_cast<__m256i*>(a.out + i), h);
      } else {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.out + i), h);
      }
    }
  }
  if (stream) _mm_sfence();  // streamed stores visible before the pool reports completion
  adam_range_scalar(c, a, i, end);
}

template <GradKind G>
void adam_out(const AdamConsts& c, const AdamArgs& a, std::int64_t begin, std::int64_t end) {
  switch (a.out_kind) {
    case OutKind::kNone: return adam_range<G, OutKind::kNone>(c, a, begin, end);
    case OutKind::kBF16: return adam_range<G, OutKind::kBF16>(c, a, begin, end);
    case OutKind::kFP16: return adam_range<G, OutKind::kFP16>(c, a, begin, end);
  }
}

// Horizontal sum (GCC 12's _mm512_reduce_add_pd trips -Wmaybe-uninitialized).
inline double hsum(__m512d x) {
  alignas(64) double lanes[8];
  _mm512_store_pd(lanes, x);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

inline void sumsq_accumulate(__m512 x, __m512d& acc0, __m512d& acc1) {
  const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
  const __m512d hi =
      _mm512_cvtps_pd(_mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(x), 1)));
  acc0 = _mm512_fmadd_pd(lo, lo, acc0);
  acc1 = _mm512_fmadd_pd(hi, hi, acc1);
}

}  // namespace

void adam_avx512(const AdamConsts& c, const AdamArgs& a, std::int64_t begin, std::int64_t end) {
  switch (a.grad_kind) {
    case GradKind::kF32: return adam_out<GradKind::kF32>(c, a, begin, end);
    case GradKind::kBF16: return adam_out<GradKind::kBF16>(c, a, begin, end);
    case GradKind::kFP16: return adam_out<GradKind::kFP16>(c, a, begin, end);
  }
}

double sumsq_f32_avx512(const float* x, std::int64_t n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), a2 = _mm512_setzero_pd(), a3 = _mm512_setzero_pd();
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    sumsq_accumulate(_mm512_loadu_ps(x + i), a0, a1);
    sumsq_accumulate(_mm512_loadu_ps(x + i + 16), a2, a3);
  }
  for (; i + 16 <= n; i += 16) sumsq_accumulate(_mm512_loadu_ps(x + i), a0, a1);
  const double s = hsum(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
  return s + sumsq_range_scalar(x + i, n - i);
}

double sumsq_16_avx512(const std::uint16_t* x, bool bf16, std::int64_t n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  std::int64_t i = 0;
  if (bf16) {
    for (; i + 16 <= n; i += 16) sumsq_accumulate(load_grad<GradKind::kBF16>(x, i), a0, a1);
  } else {
    for (; i + 16 <= n; i += 16) sumsq_accumulate(load_grad<GradKind::kFP16>(x, i), a0, a1);
  }
  const double s = hsum(_mm512_add_pd(a0, a1));
  return s + sumsq_range_scalar(x + i, bf16, n - i);
}

}  // namespace zinf::optim::detail

#endif  // ZINF_X86_KERNELS
