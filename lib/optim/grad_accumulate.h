// zinf::optim — gradient accumulation in host memory.
// Implements: accumulate_grad(), acc = g (assign) or acc += g over flat host
// buffers — an fp32 accumulator fed fp32 or 16-bit gradients (as they come
// off the GPU), or a 16-bit accumulator (runs without gradient accumulation:
// a second contribution, e.g. the tied embedding's, is added in float and
// rounded once) — returning the sum of squares of the result from the same
// pass, so the norm for clipping and the inf/NaN check cost no extra read
// (want_norm = false skips it: micro-batches before the accumulation
// boundary). Compiled for AVX-512, AVX2 and the baseline, picked at load
// time; split over a ThreadPool in fixed chunks, so results do not depend on
// the thread count. No LibTorch here.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "optim/cpu_adam.h"

namespace zinf::optim {

// Each returns the sum of squares of the result, or 0 when !want_norm.
double accumulate_grad(float* acc, const float* g, std::int64_t n, bool assign, bool want_norm = true,
                       ThreadPool& pool = ThreadPool::shared());
double accumulate_grad(float* acc, const std::uint16_t* g, Half16 g_kind, std::int64_t n, bool assign,
                       bool want_norm = true, ThreadPool& pool = ThreadPool::shared());
double accumulate_grad(std::uint16_t* acc, const std::uint16_t* g, Half16 kind, std::int64_t n, bool assign,
                       bool want_norm = true, ThreadPool& pool = ThreadPool::shared());

}  // namespace zinf::optim
