// zinf::optim — CPU Adam kernels for AVX2 + FMA + F16C (8 floats per vector).
// Implements: adam_avx2 (the fused update, 16-bit gradient loads and
// bf16/fp16 stores of the new weights) and sumsq_*_avx2 (sum of squares in
// double). Compiled with -mavx2 -mfma -mf16c -ffp-contract=off (see
// CMakeLists.txt) and only called after cpu_adam.cpp has checked the CPU.
// The Adam update uses no FMA so its bits equal the scalar path's.
#include "optim/cpu_adam_kernels.h"

#if defined(ZINF_X86_KERNELS)
#include <immintrin.h>

namespace zinf::optim::detail {
namespace {

template <GradKind G>
inline __m256 load_grad(const void* grad, std::int64_t i) {
  if constexpr (G == GradKind::kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(grad) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(grad) + i));
    if constexpr (G == GradKind::kBF16) {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
      return _mm256_cvtph_ps(h);
    }
  }
}

// 8 x 32-bit values (each <= 0xFFFF) -> 8 x 16-bit.
inline __m128i narrow(__m256i x) {
  return _mm_packus_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
}

// Round to nearest even like c10::BFloat16; NaN -> 0x7FC0.
inline __m128i to_bf16_vec(__m256 p) {
  const __m256i x = _mm256_castps_si256(p);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7FFF)), lsb), 16);
  const __m256 nan = _mm256_cmp_ps(p, p, _CMP_UNORD_Q);
  r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), _mm256_castps_si256(nan));
  return narrow(r);
}

// IEEE round to nearest even (F16C); NaN -> sign|0x7E00 like c10::Half.
inline __m128i to_fp16_vec(__m256 p) {
  __m128i h = _mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT);
  const __m256 nan = _mm256_cmp_ps(p, p, _CMP_UNORD_Q);
  if (_mm256_movemask_ps(nan)) {
    const __m256i x = _mm256_castps_si256(p);
    const __m256i canon = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x8000)),
                                          _mm256_set1_epi32(0x7E00));
    const __m256i wide = _mm256_blendv_epi8(_mm256_cvtepu16_epi32(h), canon, _mm256_castps_si256(nan));
    h = narrow(wide);
  }
  return h;
}

template <GradKind G, OutKind O>
void adam_range(const AdamConsts& c, const AdamArgs& a, std::int64_t begin, std::int64_t end) {
  const __m256 inv_gs = _mm256_set1_ps(c.inv_grad_scale);
  const __m256 l2 = _mm256_set1_ps(c.l2);
  const __m256 decay = _mm256_set1_ps(c.decay);
  const __m256 b1 = _mm256_set1_ps(c.beta1), omb1 = _mm256_set1_ps(c.one_minus_beta1);
  const __m256 b2 = _mm256_set1_ps(c.beta2), omb2 = _mm256_set1_ps(c.one_minus_beta2);
  const __m256 isbc2 = _mm256_set1_ps(c.inv_sqrt_bc2);
  const __m256 eps = _mm256_set1_ps(c.eps);
  const __m256 step = _mm256_set1_ps(c.step_size);
  float* const master = a.master;
  float* const mom = a.m;
  float* const var = a.v;
  std::int64_t i = begin;
  // The 16-bit copy is written, never read here: stream it past the cache
  // (no read-for-ownership, 2 fewer bytes of traffic per parameter) when the
  // stores are aligned, which page-aligned pinned buffers always are.
  const bool stream = O != OutKind::kNone && (reinterpret_cast<std::uintptr_t>(a.out + begin) % 16) == 0;
  for (; i + 8 <= end; i += 8) {
    __m256 g = _mm256_mul_ps(load_grad<G>(a.grad, i), inv_gs);
    __m256 p = _mm256_loadu_ps(master + i);
    __m256 m = _mm256_loadu_ps(mom + i);
    __m256 v = _mm256_loadu_ps(var + i);
    if (c.use_l2) g = _mm256_add_ps(g, _mm256_mul_ps(l2, p));
    p = _mm256_mul_ps(p, decay);
    m = _mm256_add_ps(_mm256_mul_ps(m, b1), _mm256_mul_ps(g, omb1));
    v = _mm256_add_ps(_mm256_mul_ps(v, b2), _mm256_mul_ps(_mm256_mul_ps(omb2, g), g));
    const __m256 d = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(v), isbc2), eps);
    p = _mm256_sub_ps(p, _mm256_mul_ps(step, _mm256_div_ps(m, d)));
    _mm256_storeu_ps(master + i, p);
    _mm256_storeu_ps(mom + i, m);
    _mm256_storeu_ps(var + i, v);
    if constexpr (O == OutKind::kBF16) {
      const auto h = to_bf16_vec(p);
      if (stream) {
        _mm_stream_si128(reinterpret_cast<__m128i*>(a.out + i), h);
      } else {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(a.out + i), h);
      }
    } else if constexpr (O == OutKind::kFP16) {
      const auto h = to_fp16_vec(p);
      if (stream) {
        _mm_stream_si128(reinterpret_cast<__m128i*>(a.out + i), h);
      } else {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(a.out + i), h);
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

inline void sumsq_accumulate(__m256 x, __m256d& acc0, __m256d& acc1) {
  const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
  const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
  acc0 = _mm256_fmadd_pd(lo, lo, acc0);
  acc1 = _mm256_fmadd_pd(hi, hi, acc1);
}

inline double hsum(__m256d x) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(x), _mm256_extractf128_pd(x, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

}  // namespace

void adam_avx2(const AdamConsts& c, const AdamArgs& a, std::int64_t begin, std::int64_t end) {
  switch (a.grad_kind) {
    case GradKind::kF32: return adam_out<GradKind::kF32>(c, a, begin, end);
    case GradKind::kBF16: return adam_out<GradKind::kBF16>(c, a, begin, end);
    case GradKind::kFP16: return adam_out<GradKind::kFP16>(c, a, begin, end);
  }
}

double sumsq_f32_avx2(const float* x, std::int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), a2 = _mm256_setzero_pd(), a3 = _mm256_setzero_pd();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    sumsq_accumulate(_mm256_loadu_ps(x + i), a0, a1);
    sumsq_accumulate(_mm256_loadu_ps(x + i + 8), a2, a3);
  }
  for (; i + 8 <= n; i += 8) sumsq_accumulate(_mm256_loadu_ps(x + i), a0, a1);
  const double s = hsum(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  return s + sumsq_range_scalar(x + i, n - i);
}

double sumsq_16_avx2(const std::uint16_t* x, bool bf16, std::int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  std::int64_t i = 0;
  if (bf16) {
    for (; i + 8 <= n; i += 8) sumsq_accumulate(load_grad<GradKind::kBF16>(x, i), a0, a1);
  } else {
    for (; i + 8 <= n; i += 8) sumsq_accumulate(load_grad<GradKind::kFP16>(x, i), a0, a1);
  }
  const double s = hsum(_mm256_add_pd(a0, a1));
  return s + sumsq_range_scalar(x + i, bf16, n - i);
}

}  // namespace zinf::optim::detail

#endif  // ZINF_X86_KERNELS
