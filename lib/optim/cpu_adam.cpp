// zinf::optim — fused CPU Adam/AdamW (see cpu_adam.h).
// Implements: argument checks, the per-step float constants, instruction-set
// detection and forcing, the scalar kernels, and the split of each call into
// contiguous chunks on a ThreadPool. The vector kernels live in
// cpu_adam_avx2.cpp and cpu_adam_avx512.cpp.
#include "optim/cpu_adam.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "optim/cpu_adam_kernels.h"

namespace zinf::optim {

namespace {

using detail::AdamArgs;
using detail::AdamConsts;

// Elements per chunk handed to one thread: ~2 MB of traffic for Adam, large
// enough that the hand-out costs nothing, small enough to balance 16+ threads
// on a few million parameters. Fixed, so results never depend on the pool.
constexpr std::int64_t kAdamChunk = 1 << 16;
constexpr std::int64_t kNormChunk = 1 << 16;

std::atomic<Isa> g_forced{Isa::kAuto};

std::string num(double x) {
  std::ostringstream s;
  s.precision(9);
  s << x;
  return s.str();
}

void check_param(bool ok, const std::string& what, const std::string& allowed) {
  if (!ok) throw Error("adam_step: " + what + " is invalid", "allowed: " + allowed);
}

void check_params(const AdamParams& p) {
  check_param(std::isfinite(p.lr) && p.lr >= 0, "lr = " + num(p.lr), "a finite learning rate >= 0");
  check_param(p.beta1 >= 0 && p.beta1 < 1, "beta1 = " + num(p.beta1), "betas in [0, 1), e.g. [0.9, 0.999]");
  check_param(p.beta2 >= 0 && p.beta2 < 1, "beta2 = " + num(p.beta2), "betas in [0, 1), e.g. [0.9, 0.999]");
  check_param(std::isfinite(p.eps) && p.eps >= 0, "eps = " + num(p.eps), "a finite eps >= 0, e.g. 1e-8");
  check_param(std::isfinite(p.weight_decay) && p.weight_decay >= 0, "weight_decay = " + num(p.weight_decay),
              "a finite weight decay >= 0");
  check_param(p.step >= 1, "step = " + std::to_string(p.step), "a 1-based step count >= 1");
  check_param(std::isfinite(p.grad_scale) && p.grad_scale > 0, "grad_scale = " + num(p.grad_scale),
              "a finite gradient scale > 0 (1 = unscaled)");
}

struct Span {
  const char* name;
  std::uintptr_t begin, end;
};

void check_buffers(const AdamBuffers& b) {
  if (b.n < 0) {
    throw Error("adam_step: element count " + std::to_string(b.n) + " is negative", "pass the buffer length, >= 0");
  }
  auto need = [](const void* ptr, const char* name) {
    if (!ptr) throw Error(std::string("adam_step: buffer '") + name + "' is null", "pass all of master, exp_avg and exp_avg_sq");
  };
  need(b.master, "master");
  need(b.exp_avg, "exp_avg");
  need(b.exp_avg_sq, "exp_avg_sq");
  if ((b.grad == nullptr) == (b.grad16 == nullptr)) {
    throw Error(b.grad ? "adam_step: both grad (fp32) and grad16 are set" : "adam_step: no gradient buffer is set",
                "set exactly one of grad (fp32) and grad16 (bf16/fp16)");
  }
  const auto bytes4 = static_cast<std::uintptr_t>(b.n) * 4, bytes2 = static_cast<std::uintptr_t>(b.n) * 2;
  auto span = [](const void* p, const char* name, std::uintptr_t bytes) {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    return Span{name, a, a + bytes};
  };
  std::vector<Span> spans = {span(b.master, "master", bytes4), span(b.exp_avg, "exp_avg", bytes4),
                             span(b.exp_avg_sq, "exp_avg_sq", bytes4)};
  if (b.grad) spans.push_back(span(b.grad, "grad", bytes4));
  // out == grad16 (same pointer, same element size) is allowed: each element's
  // gradient is read before its new weight is stored.
  if (b.grad16) spans.push_back(span(b.grad16, "grad16", bytes2));
  if (b.out && b.out != b.grad16) spans.push_back(span(b.out, "out", bytes2));
  for (std::size_t i = 0; i < spans.size(); ++i) {
    for (std::size_t j = i + 1; j < spans.size(); ++j) {
      if (spans[i].begin < spans[j].end && spans[j].begin < spans[i].end) {
        throw Error(std::string("adam_step: buffers '") + spans[i].name + "' and '" + spans[j].name + "' overlap",
                    "give every buffer its own memory (only out == grad16 may share)");
      }
    }
  }
}

AdamConsts make_consts(const AdamParams& p) {
  AdamConsts c{};
  const double bc1 = p.bias_correction ? 1.0 - std::pow(p.beta1, double(p.step)) : 1.0;
  const double bc2 = p.bias_correction ? 1.0 - std::pow(p.beta2, double(p.step)) : 1.0;
  c.inv_grad_scale = static_cast<float>(1.0 / p.grad_scale);
  c.use_l2 = !p.adamw && p.weight_decay != 0;
  c.l2 = c.use_l2 ? static_cast<float>(p.weight_decay) : 0.0f;
  c.decay = p.adamw ? static_cast<float>(1.0 - p.lr * p.weight_decay) : 1.0f;
  c.beta1 = static_cast<float>(p.beta1);
  c.one_minus_beta1 = static_cast<float>(1.0 - p.beta1);
  c.beta2 = static_cast<float>(p.beta2);
  c.one_minus_beta2 = static_cast<float>(1.0 - p.beta2);
  c.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  c.eps = static_cast<float>(p.eps);
  c.step_size = static_cast<float>(p.lr / bc1);
  return c;
}

using AdamKernel = void (*)(const AdamConsts&, const AdamArgs&, std::int64_t, std::int64_t);
using SumsqF32 = double (*)(const float*, std::int64_t);
using Sumsq16 = double (*)(const std::uint16_t*, bool, std::int64_t);

struct Kernels {
  AdamKernel adam;
  SumsqF32 sumsq_f32;
  Sumsq16 sumsq_16;
};

Kernels kernels_for(Isa isa) {
  switch (isa) {
#if defined(ZINF_X86_KERNELS)
    case Isa::kAvx512: return {detail::adam_avx512, detail::sumsq_f32_avx512, detail::sumsq_16_avx512};
    case Isa::kAvx2: return {detail::adam_avx2, detail::sumsq_f32_avx2, detail::sumsq_16_avx2};
#endif
    default: return {detail::adam_scalar, detail::sumsq_f32_scalar, detail::sumsq_16_scalar};
  }
}

bool cpu_has(Isa isa) {
#if defined(ZINF_X86_KERNELS)
  // __builtin_cpu_supports also checks that the OS saves the YMM/ZMM state.
  static const bool avx2 = (__builtin_cpu_init(), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                                      __builtin_cpu_supports("f16c"));
  static const bool avx512 = avx2 && __builtin_cpu_supports("avx512f");
  if (isa == Isa::kAvx2) return avx2;
  if (isa == Isa::kAvx512) return avx512;
#endif
  return isa == Isa::kAuto || isa == Isa::kScalar;
}

double sumsq_parallel(std::int64_t n, ThreadPool& pool, const std::function<double(std::int64_t, std::int64_t)>& f) {
  if (n <= kNormChunk) return f(0, n);
  std::vector<double> partial(static_cast<std::size_t>((n + kNormChunk - 1) / kNormChunk), 0.0);
  pool.parallel_for(n, kNormChunk, [&](std::int64_t begin, std::int64_t end) {
    partial[static_cast<std::size_t>(begin / kNormChunk)] = f(begin, end);
  });
  double s = 0;
  for (double x : partial) s += x;  // fixed order: deterministic
  return s;
}

}  // namespace

// ---------------------------------------------------------------- scalar kernels
namespace detail {
void adam_scalar(const AdamConsts& c, const AdamArgs& a, std::int64_t begin, std::int64_t end) {
  adam_range_scalar(c, a, begin, end);
}
double sumsq_f32_scalar(const float* x, std::int64_t n) { return sumsq_range_scalar(x, n); }
double sumsq_16_scalar(const std::uint16_t* x, bool bf16, std::int64_t n) { return sumsq_range_scalar(x, bf16, n); }
}  // namespace detail

// ---------------------------------------------------------------- instruction sets
const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAuto: return "auto";
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : {Isa::kAuto, Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (name == isa_name(isa)) return isa;
  }
  throw UsageError("unknown instruction set '" + name + "'", "use one of: auto, scalar, avx2, avx512");
}

bool isa_supported(Isa isa) { return cpu_has(isa); }

Isa best_isa() {
  if (cpu_has(Isa::kAvx512)) return Isa::kAvx512;
  if (cpu_has(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

Isa active_isa() {
  const Isa forced = g_forced.load(std::memory_order_relaxed);
  return forced == Isa::kAuto ? best_isa() : forced;
}

void force_isa(Isa isa) {
  if (!isa_supported(isa)) {
    throw Error(std::string("instruction set '") + isa_name(isa) + "' is not available on this CPU or build",
                std::string("this machine supports up to '") + isa_name(best_isa()) + "'; use auto");
  }
  g_forced.store(isa, std::memory_order_relaxed);
}

const char* half16_name(Half16 kind) { return kind == Half16::kBF16 ? "bf16" : "fp16"; }

// ---------------------------------------------------------------- conversions
std::uint16_t float_to_bf16(float f) { return detail::to_bf16(f); }
std::uint16_t float_to_fp16(float f) { return detail::to_fp16(f); }
float bf16_to_float(std::uint16_t h) { return detail::from_bf16(h); }
float fp16_to_float(std::uint16_t h) { return detail::from_fp16(h); }

// ---------------------------------------------------------------- adam_step
void adam_step(const AdamParams& params, const AdamBuffers& b, ThreadPool& pool) {
  check_params(params);
  check_buffers(b);
  if (b.n == 0) return;
  const AdamConsts c = make_consts(params);
  AdamArgs a{};
  a.master = b.master;
  a.m = b.exp_avg;
  a.v = b.exp_avg_sq;
  if (b.grad) {
    a.grad = b.grad;
    a.grad_kind = detail::GradKind::kF32;
  } else {
    a.grad = b.grad16;
    a.grad_kind = b.grad16_kind == Half16::kBF16 ? detail::GradKind::kBF16 : detail::GradKind::kFP16;
  }
  a.out = b.out;
  a.out_kind = !b.out ? detail::OutKind::kNone
                      : (b.out_kind == Half16::kBF16 ? detail::OutKind::kBF16 : detail::OutKind::kFP16);
  const AdamKernel kernel = kernels_for(active_isa()).adam;
  const std::vector<FlatRange>* exempt = b.no_decay;
  if (!exempt || exempt->empty() || params.weight_decay == 0) {
    pool.parallel_for(b.n, kAdamChunk, [&](std::int64_t begin, std::int64_t end) { kernel(c, a, begin, end); });
    return;
  }
  for (std::size_t i = 0; i < exempt->size(); ++i) {
    const FlatRange& r = (*exempt)[i];
    if (r.begin < 0 || r.count < 0 || r.end() > b.n || (i > 0 && r.begin < (*exempt)[i - 1].end()))
      throw Error("adam_step: no_decay range [" + std::to_string(r.begin) + ", " + std::to_string(r.end()) +
                      ") is outside [0, " + std::to_string(b.n) + ") or out of order",
                  "pass sorted, disjoint ranges inside the buffer");
  }
  AdamParams plain = params;
  plain.weight_decay = 0;
  const AdamConsts c0 = make_consts(plain);  // the same constants, decay 1 and no L2 term
  // Each chunk alternates decayed and exempt runs: the kernels' per-element
  // arithmetic does not depend on where a run starts, so the split changes no bits.
  pool.parallel_for(b.n, kAdamChunk, [&](std::int64_t begin, std::int64_t end) {
    auto it = std::upper_bound(exempt->begin(), exempt->end(), begin,
                               [](std::int64_t x, const FlatRange& r) { return x < r.end(); });
    std::int64_t at = begin;
    while (at < end) {
      if (it == exempt->end() || it->begin >= end) {
        kernel(c, a, at, end);
        break;
      }
      if (it->begin > at) kernel(c, a, at, it->begin);
      const std::int64_t stop = std::min(end, it->end());
      const std::int64_t from = std::max(at, it->begin);
      if (from < stop) kernel(c0, a, from, stop);
      at = stop;
      ++it;
    }
  });
}

void adam_step(const AdamParams& params, float* master, float* exp_avg, float* exp_avg_sq, const float* grad,
               std::int64_t n, std::uint16_t* out, Half16 out_kind, ThreadPool& pool) {
  AdamBuffers b;
  b.n = n;
  b.master = master;
  b.exp_avg = exp_avg;
  b.exp_avg_sq = exp_avg_sq;
  b.grad = grad;
  b.out = out;
  b.out_kind = out_kind;
  adam_step(params, b, pool);
}

// ---------------------------------------------------------------- norms
double l2_norm_squared(const float* x, std::int64_t n, ThreadPool& pool) {
  if (n < 0) throw Error("l2_norm_squared: element count " + std::to_string(n) + " is negative", "pass the buffer length, >= 0");
  if (n == 0) return 0.0;
  if (!x) throw Error("l2_norm_squared: buffer is null", "pass the gradient buffer");
  const SumsqF32 f = kernels_for(active_isa()).sumsq_f32;
  return sumsq_parallel(n, pool, [&](std::int64_t begin, std::int64_t end) { return f(x + begin, end - begin); });
}

double l2_norm_squared(const std::uint16_t* x, Half16 kind, std::int64_t n, ThreadPool& pool) {
  if (n < 0) throw Error("l2_norm_squared: element count " + std::to_string(n) + " is negative", "pass the buffer length, >= 0");
  if (n == 0) return 0.0;
  if (!x) throw Error("l2_norm_squared: buffer is null", "pass the gradient buffer");
  const Sumsq16 f = kernels_for(active_isa()).sumsq_16;
  const bool bf16 = kind == Half16::kBF16;
  return sumsq_parallel(n, pool, [&](std::int64_t begin, std::int64_t end) { return f(x + begin, bf16, end - begin); });
}

}  // namespace zinf::optim
