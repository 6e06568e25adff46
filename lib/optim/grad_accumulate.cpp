// zinf::optim — gradient accumulation in host memory.
#include "optim/grad_accumulate.h"

#include <cstring>
#include <vector>

namespace zinf::optim {
namespace {

constexpr std::int64_t kChunk = std::int64_t(1) << 16;  // elements per pool chunk

inline float to_float(std::uint16_t h, Half16 kind) {
  if (kind == Half16::kBF16) {
    const std::uint32_t bits = std::uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  return fp16_to_float(h);
}

inline std::uint16_t to_half(float f, Half16 kind) { return kind == Half16::kBF16 ? float_to_bf16(f) : float_to_fp16(f); }

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

// Eight independent lanes, so the compiler vectorises the loop without
// reassociating a single sum.
template <class Load>
double sweep_f32(float* acc, std::int64_t begin, std::int64_t end, bool assign, const Load& load) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t i = begin;
  for (; i + 8 <= end; i += 8)
    for (int j = 0; j < 8; ++j) {
      const float r = assign ? load(i + j) : acc[i + j] + load(i + j);
      acc[i + j] = r;
      lane[j] += double(r) * double(r);
    }
  for (; i < end; ++i) {
    const float r = assign ? load(i) : acc[i] + load(i);
    acc[i] = r;
    lane[0] += double(r) * double(r);
  }
  double s = 0;
  for (double l : lane) s += l;
  return s;
}

}  // namespace

double accumulate_grad(float* acc, const float* g, std::int64_t n, bool assign, ThreadPool& pool) {
  return chunked(n, pool, [&](std::int64_t b, std::int64_t e) {
    return sweep_f32(acc, b, e, assign, [g](std::int64_t i) { return g[i]; });
  });
}

double accumulate_grad(float* acc, const std::uint16_t* g, Half16 g_kind, std::int64_t n, bool assign,
                       ThreadPool& pool) {
  return chunked(n, pool, [&](std::int64_t b, std::int64_t e) {
    if (g_kind == Half16::kBF16)
      return sweep_f32(acc, b, e, assign, [g](std::int64_t i) { return to_float(g[i], Half16::kBF16); });
    return sweep_f32(acc, b, e, assign, [g](std::int64_t i) { return fp16_to_float(g[i]); });
  });
}

double accumulate_grad(std::uint16_t* acc, const std::uint16_t* g, Half16 kind, std::int64_t n, bool assign,
                       ThreadPool& pool) {
  return chunked(n, pool, [&](std::int64_t b, std::int64_t e) {
    double s = 0;
    for (std::int64_t i = b; i < e; ++i) {
      const std::uint16_t h = assign ? g[i] : to_half(to_float(acc[i], kind) + to_float(g[i], kind), kind);
      acc[i] = h;
      const double r = to_float(h, kind);
      s += r * r;
    }
    return s;
  });
}

}  // namespace zinf::optim
