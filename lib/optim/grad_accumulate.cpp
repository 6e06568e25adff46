// zinf::optim — gradient accumulation in host memory.
#include "optim/grad_accumulate.h"

#include <cstring>
#include <vector>

namespace zinf::optim {
namespace {

constexpr std::int64_t kChunk = std::int64_t(1) << 16;  // elements per pool chunk

// One function body per instruction set, chosen once at load time (GCC/Clang
// function multi-versioning); the loops below vectorise at each width.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ZINF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ZINF_CLONES
#endif

inline float bf16_bits_to_float(std::uint16_t h) {
  const std::uint32_t bits = std::uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float to_float(std::uint16_t h, Half16 kind) {
  return kind == Half16::kBF16 ? bf16_bits_to_float(h) : fp16_to_float(h);
}

inline std::uint16_t to_half(float f, Half16 kind) { return kind == Half16::kBF16 ? float_to_bf16(f) : float_to_fp16(f); }

// acc[b, e) (+)= load(i); with `norm`, the sum of squares of the result in
// eight independent double lanes (vectorisable without reassociating one sum).
template <class Load>
inline double sweep(float* acc, std::int64_t b, std::int64_t e, bool assign, bool norm, const Load& load) {
  if (!norm) {
    if (assign)
      for (std::int64_t i = b; i < e; ++i) acc[i] = load(i);
    else
      for (std::int64_t i = b; i < e; ++i) acc[i] += load(i);
    return 0.0;
  }
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t i = b;
  for (; i + 8 <= e; i += 8)
    for (int j = 0; j < 8; ++j) {
      const float r = assign ? load(i + j) : acc[i + j] + load(i + j);
      acc[i + j] = r;
      lane[j] += double(r) * double(r);
    }
  for (; i < e; ++i) {
    const float r = assign ? load(i) : acc[i] + load(i);
    acc[i] = r;
    lane[0] += double(r) * double(r);
  }
  double s = 0;
  for (double l : lane) s += l;
  return s;
}

ZINF_CLONES double sweep_f32(float* acc, const float* g, std::int64_t b, std::int64_t e, bool assign, bool norm) {
  return sweep(acc, b, e, assign, norm, [g](std::int64_t i) { return g[i]; });
}

ZINF_CLONES double sweep_bf16(float* acc, const std::uint16_t* g, std::int64_t b, std::int64_t e, bool assign,
                              bool norm) {
  return sweep(acc, b, e, assign, norm, [g](std::int64_t i) { return bf16_bits_to_float(g[i]); });
}

double sweep_fp16(float* acc, const std::uint16_t* g, std::int64_t b, std::int64_t e, bool assign, bool norm) {
  return sweep(acc, b, e, assign, norm, [g](std::int64_t i) { return fp16_to_float(g[i]); });
}

// Runs body(begin, end) -> sum of squares over fixed chunks and adds the
// chunks' sums in chunk order.
template <class Body>
double chunked(std::int64_t n, ThreadPool& pool, const Body& body) {
  if (n <= 0) return 0.0;
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> sums(static_cast<std::size_t>(chunks), 0.0);
  pool.parallel_for(n, kChunk, [&](std::int64_t begin, std::int64_t end) {
    sums[static_cast<std::size_t>(begin / kChunk)] = body(begin, end);
  });
  double total = 0;
  for (double s : sums) total += s;
  return total;
}

}  // namespace

double accumulate_grad(float* acc, const float* g, std::int64_t n, bool assign, bool want_norm, ThreadPool& pool) {
  return chunked(n, pool, [&](std::int64_t b, std::int64_t e) { return sweep_f32(acc, g, b, e, assign, want_norm); });
}

double accumulate_grad(float* acc, const std::uint16_t* g, Half16 g_kind, std::int64_t n, bool assign, bool want_norm,
                       ThreadPool& pool) {
  return chunked(n, pool, [&](std::int64_t b, std::int64_t e) {
    return g_kind == Half16::kBF16 ? sweep_bf16(acc, g, b, e, assign, want_norm)
                                   : sweep_fp16(acc, g, b, e, assign, want_norm);
  });
}

double accumulate_grad(std::uint16_t* acc, const std::uint16_t* g, Half16 kind, std::int64_t n, bool assign,
                       bool want_norm, ThreadPool& pool) {
  return chunked(n, pool, [&](std::int64_t b, std::int64_t e) {
    double s = 0;
    for (std::int64_t i = b; i < e; ++i) {
      const std::uint16_t h = assign ? g[i] : to_half(to_float(acc[i], kind) + to_float(g[i], kind), kind);
      acc[i] = h;
      if (want_norm) {
        const double r = to_float(h, kind);
        s += r * r;
      }
    }
    return s;
  });
}

}  // namespace zinf::optim
