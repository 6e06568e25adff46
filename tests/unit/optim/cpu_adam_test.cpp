// optim: the fused CPU Adam/AdamW equals a double-precision reference and
// LibTorch's torch::optim::AdamW / Adam to float rounding on every instruction
// set, is bit-identical across instruction sets and thread counts, rounds
// bf16/fp16 exactly like torch, and its norm detects inf/NaN.
// LibTorch's logging (glog or c10's stand-in) defines CHECK, CHECK_EQ, ...;
// include it first and drop those so doctest's macros win.
#include <torch/torch.h>
#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "optim/cpu_adam.h"

using namespace zinf;
using namespace zinf::optim;

namespace {

// Restores automatic instruction-set choice when a test ends.
struct IsaGuard {
  ~IsaGuard() { force_isa(Isa::kAuto); }
};

std::vector<Isa> isas_here() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

std::vector<float> randn(std::int64_t n, float scale, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> x(static_cast<std::size_t>(n));
  for (auto& e : x) e = dist(gen);
  return x;
}

torch::Tensor as_tensor(std::vector<float>& x) {
  return torch::from_blob(x.data(), {static_cast<std::int64_t>(x.size())}, torch::kFloat32);
}

// Optimizer state in fp32, as the engine keeps it.
struct State {
  std::vector<float> p, m, v;
  explicit State(std::int64_t n, unsigned seed)
      : p(randn(n, 0.5f, seed)), m(static_cast<std::size_t>(n), 0.0f), v(static_cast<std::size_t>(n), 0.0f) {}
};

// The textbook algorithm in double, as torch.optim.AdamW / Adam define it,
// one step from a given fp32 state. For each result it also records the size
// of the terms it was summed from (p: decayed weight and the update, with m's
// own terms; m: beta1*m and (1-beta1)*g; v: the new v), the scale float
// rounding is relative to where terms cancel.
struct Reference {
  std::vector<double> p, m, v;
  std::vector<double> sp, sm, sv;  // term scales
  explicit Reference(const State& s)
      : p(s.p.begin(), s.p.end()), m(s.m.begin(), s.m.end()), v(s.v.begin(), s.v.end()),
        sp(p.size()), sm(p.size()), sv(p.size()) {}
  void step(const AdamParams& a, const std::vector<float>& grad) {
    const double bc1 = a.bias_correction ? 1 - std::pow(a.beta1, double(a.step)) : 1;
    const double bc2 = a.bias_correction ? 1 - std::pow(a.beta2, double(a.step)) : 1;
    const double step_size = a.lr / bc1;
    for (std::size_t i = 0; i < p.size(); ++i) {
      double g = double(grad[i]) / a.grad_scale;
      // Adam's L2 gradient g + wd*p is an fp32 tensor in torch as well; where
      // g and wd*p cancel its rounding is the input's, so take it in float.
      if (!a.adamw) g = double(float(float(g) + float(a.weight_decay) * float(p[i])));
      if (a.adamw) p[i] *= 1 - a.lr * a.weight_decay;
      sm[i] = std::abs(a.beta1 * m[i]) + std::abs((1 - a.beta1) * g);
      m[i] = a.beta1 * m[i] + (1 - a.beta1) * g;
      v[i] = a.beta2 * v[i] + (1 - a.beta2) * g * g;
      sv[i] = v[i];
      const double d = std::sqrt(v[i]) / std::sqrt(bc2) + a.eps;
      sp[i] = std::abs(p[i]) + step_size * sm[i] / d;
      p[i] -= step_size * m[i] / d;
    }
  }
};

// max |got - want| / scale, elementwise.
double max_scaled_err(const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& scale) {
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(double(got[i]) - want[i]);
    if (err > 0) worst = std::max(worst, err / scale[i]);
  }
  return worst;
}

template <class T>
double rms(const std::vector<T>& x) {
  double s = 0;
  for (T e : x) s += double(e) * double(e);
  return std::sqrt(s / double(x.size()));
}

// max |got - want| / (|want| + rms(want)): the error relative to the element,
// or to the buffer's typical magnitude for elements that cancel to ~0 (m is
// a difference of similar terms; float rounding there is relative to them).
template <class A, class B>
double max_rel_err(const std::vector<A>& got, const std::vector<B>& want) {
  const double floor = rms(want) + 1e-30;
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, std::abs(double(got[i]) - double(want[i])) / (std::abs(double(want[i])) + floor));
  }
  return worst;
}

AdamParams adamw_params() {
  AdamParams a;
  a.lr = 1e-2;
  a.beta1 = 0.9;
  a.beta2 = 0.999;
  a.eps = 1e-8;
  a.weight_decay = 0.1;
  a.adamw = true;
  return a;
}

std::vector<float> to_float(const std::vector<std::uint16_t>& h, Half16 kind) {
  std::vector<float> f(h.size());
  for (std::size_t i = 0; i < h.size(); ++i) f[i] = kind == Half16::kBF16 ? bf16_to_float(h[i]) : fp16_to_float(h[i]);
  return f;
}

std::vector<std::uint16_t> to_half(const std::vector<float>& f, Half16 kind) {
  std::vector<std::uint16_t> h(f.size());
  for (std::size_t i = 0; i < f.size(); ++i) h[i] = kind == Half16::kBF16 ? float_to_bf16(f[i]) : float_to_fp16(f[i]);
  return h;
}

std::vector<std::uint16_t> torch_half_bits(const std::vector<float>& f, Half16 kind) {
  std::vector<float> copy = f;
  torch::Tensor t = as_tensor(copy).to(kind == Half16::kBF16 ? torch::kBFloat16 : torch::kFloat16).contiguous();
  std::vector<std::uint16_t> bits(f.size());
  std::memcpy(bits.data(), t.data_ptr(), bits.size() * 2);
  return bits;
}

// Values that stress rounding: ties, overflow edges, subnormals, specials.
std::vector<float> tricky_floats() {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {0.0f, -0.0f, 1.0f, -1.0f, inf, -inf, std::numeric_limits<float>::quiet_NaN(),
                          -std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::lowest(), std::numeric_limits<float>::min(),
                          std::numeric_limits<float>::denorm_min(), 65504.0f, 65519.0f, 65520.0f, 65535.0f,
                          6.1035156e-05f /* 2^-14 */, 5.9604645e-08f /* 2^-24 */, 2.9802322e-08f /* 2^-25 */,
                          2.9802326e-08f, 1.00390625f /* bf16 tie, even */, 1.01171875f /* bf16 tie, odd */,
                          1.00048828125f /* fp16 tie */, 3.3895314e38f /* rounds to bf16 inf */};
  // Exact ties and near-ties of both formats across exponents.
  std::mt19937 gen(7);
  std::uniform_int_distribution<std::uint32_t> bits(0, 0xFFFFFFFFu);
  for (int i = 0; i < 20000; ++i) {
    std::uint32_t u = bits(gen);
    if (i % 4 == 1) u = (u & 0xFFFF0000u) | 0x8000u;  // bf16 tie
    if (i % 4 == 2) u = (u & 0xFFFFE000u) | 0x1000u;  // fp16 tie
    if (i % 4 == 3) u = (u & 0x80FFFFFFu) | ((100u + (u % 45u)) << 23);  // fp16 range incl. subnormals
    float f;
    std::memcpy(&f, &u, 4);
    x.push_back(f);
  }
  return x;
}

void check_half_matches_torch(const std::vector<float>& src, const std::vector<std::uint16_t>& got, Half16 kind) {
  const auto want = torch_half_bits(src, kind);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < src.size(); ++i) {
    if (std::isnan(src[i])) {
      const float back = kind == Half16::kBF16 ? bf16_to_float(got[i]) : fp16_to_float(got[i]);
      if (!std::isnan(back)) ++mismatches;
    } else if (got[i] != want[i]) {
      if (mismatches < 5) MESSAGE("value " << src[i] << ": got 0x" << std::hex << got[i] << " torch 0x" << want[i]);
      ++mismatches;
    }
  }
  CHECK(mismatches == 0);
}

}  // namespace

// ---------------------------------------------------------------- conversions
TEST_CASE("float_to_bf16 and float_to_fp16 round exactly like torch's .to(kBFloat16/kHalf)") {
  const auto src = tricky_floats();
  for (Half16 kind : {Half16::kBF16, Half16::kFP16}) {
    const std::string kind_s = half16_name(kind);
    CAPTURE(kind_s);
    check_half_matches_torch(src, to_half(src, kind), kind);
  }
  CHECK(float_to_bf16(std::numeric_limits<float>::quiet_NaN()) == 0x7FC0);
  CHECK(float_to_fp16(-std::numeric_limits<float>::quiet_NaN()) == 0xFE00);
  CHECK(float_to_fp16(65520.0f) == 0x7C00);
  CHECK(float_to_fp16(65519.0f) == 0x7BFF);
}

TEST_CASE("bf16_to_float and fp16_to_float are exact for all 65536 encodings") {
  std::vector<std::uint16_t> all(65536);
  for (std::uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<std::uint16_t>(i);
  for (Half16 kind : {Half16::kBF16, Half16::kFP16}) {
    const std::string kind_s = half16_name(kind);
    CAPTURE(kind_s);
    torch::Tensor t = torch::from_blob(all.data(), {65536}, kind == Half16::kBF16 ? torch::kBFloat16 : torch::kFloat16)
                          .to(torch::kFloat32);
    const float* want = t.data_ptr<float>();
    int mismatches = 0;
    for (std::uint32_t i = 0; i < 65536; ++i) {
      const float got = kind == Half16::kBF16 ? bf16_to_float(all[i]) : fp16_to_float(all[i]);
      if (std::isnan(want[i]) ? !std::isnan(got) : std::memcmp(&got, &want[i], 4) != 0) ++mismatches;
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("adam_step with lr 0 writes torch's bf16/fp16 bits of the weights on every instruction set") {
  IsaGuard guard;
  const auto src = tricky_floats();
  const auto n = static_cast<std::int64_t>(src.size());
  AdamParams a;
  a.lr = 0;  // p - 0 * (m/d) == p: the output is the conversion of the input
  for (Isa isa : isas_here()) {
    force_isa(isa);
    for (Half16 kind : {Half16::kBF16, Half16::kFP16}) {
      const std::string isa_s = isa_name(isa);
      CAPTURE(isa_s);
      const std::string kind_s = half16_name(kind);
      CAPTURE(kind_s);
      std::vector<float> p = src, m(src.size(), 0.0f), v(src.size(), 0.0f), g(src.size(), 0.0f);
      std::vector<std::uint16_t> out(src.size(), 0);
      adam_step(a, p.data(), m.data(), v.data(), g.data(), n, out.data(), kind);
      check_half_matches_torch(src, out, kind);
    }
  }
}

// ---------------------------------------------------------------- against a double reference
// Each step starts the double reference from the kernel's own fp32 state, so
// the difference is this step's float rounding alone, measured against the
// size of the terms each value is summed from. (Run freely over many
// steps, both drift apart where Adam amplifies rounding: an element whose
// gradient crosses zero has m/sqrt(v) jump between -1 and 1.)
namespace {
struct PerStepError {
  double p = 0, m = 0, v = 0;
  void add(const State& s, const Reference& ref) {
    p = std::max(p, max_scaled_err(s.p, ref.p, ref.sp));
    m = std::max(m, max_scaled_err(s.m, ref.m, ref.sm));
    v = std::max(v, max_scaled_err(s.v, ref.v, ref.sv));
  }
};

PerStepError run_against_reference(AdamParams a, std::int64_t n, int steps) {
  State s(n, 1);
  PerStepError err;
  for (int step = 1; step <= steps; ++step) {
    a.step = step;
    std::vector<float> g = randn(n, float(0.01 * a.grad_scale), 100 + step);
    Reference ref(s);
    adam_step(a, s.p.data(), s.m.data(), s.v.data(), g.data(), n);
    ref.step(a, g);
    err.add(s, ref);
  }
  return err;
}
}  // namespace

TEST_CASE("adam_step equals a double-precision reference step by step for odd sizes on every instruction set") {
  IsaGuard guard;
  for (Isa isa : isas_here()) {
    force_isa(isa);
    for (std::int64_t n : {std::int64_t(1), std::int64_t(7), std::int64_t(1000003)}) {
      for (bool adamw : {true, false}) {
        for (double grad_scale : {1.0, 1024.0}) {
          const std::string isa_s = isa_name(isa);
          CAPTURE(isa_s);
          CAPTURE(n);
          CAPTURE(adamw);
          CAPTURE(grad_scale);
          AdamParams a = adamw_params();
          a.adamw = adamw;
          a.grad_scale = grad_scale;
          const PerStepError err = run_against_reference(a, n, 5);
          CHECK(err.p < 1e-6);
          CHECK(err.m < 1e-6);
          CHECK(err.v < 1e-6);
        }
      }
    }
  }
}

TEST_CASE("adam_step without bias correction equals the reference") {
  AdamParams a = adamw_params();
  a.bias_correction = false;
  const PerStepError err = run_against_reference(a, 1001, 3);
  CHECK(err.p < 1e-6);
  CHECK(err.m < 1e-6);
  CHECK(err.v < 1e-6);
}

// ---------------------------------------------------------------- against LibTorch
namespace {
// Runs `steps` steps of torch::optim::AdamW (adamw) or Adam (L2 decay) and of
// adam_step on the same data, each free-running in fp32; returns the worst
// relative error of p, m, v. The bound used below (5e-6) leaves room for the
// amplification described above; measured here: < 2e-6.
double compare_with_torch(bool adamw, std::int64_t n, double grad_scale, int steps) {
  AdamParams a = adamw_params();
  a.adamw = adamw;
  a.grad_scale = grad_scale;
  State s(n, 3);
  torch::Tensor tp = as_tensor(s.p).clone().requires_grad_(true);
  std::vector<torch::Tensor> params = {tp};
  std::unique_ptr<torch::optim::Optimizer> opt;
  if (adamw) {
    opt = std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(a.lr).betas({a.beta1, a.beta2}).eps(a.eps).weight_decay(a.weight_decay));
  } else {
    opt = std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(a.lr).betas({a.beta1, a.beta2}).eps(a.eps).weight_decay(a.weight_decay));
  }
  for (int step = 1; step <= steps; ++step) {
    a.step = step;
    std::vector<float> g = randn(n, float(0.01 * grad_scale), 300 + step);
    adam_step(a, s.p.data(), s.m.data(), s.v.data(), g.data(), n);
    // torch sees the unscaled gradient (grad_scale is a power of two: exact).
    tp.mutable_grad() = as_tensor(g).clone().div_(grad_scale);
    opt->step();
  }
  // One parameter, so one state entry (its key type differs across LibTorch versions).
  REQUIRE(opt->state().size() == 1);
  auto& st = opt->state().begin()->second;
  torch::Tensor tm, tv;
  if (adamw) {
    auto& ws = static_cast<torch::optim::AdamWParamState&>(*st);
    tm = ws.exp_avg();
    tv = ws.exp_avg_sq();
  } else {
    auto& as = static_cast<torch::optim::AdamParamState&>(*st);
    tm = as.exp_avg();
    tv = as.exp_avg_sq();
  }
  auto to_vec = [](const torch::Tensor& t) {
    torch::Tensor c = t.detach().to(torch::kFloat64).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  const auto wp = to_vec(tp), wm = to_vec(tm), wv = to_vec(tv);
  return std::max({max_rel_err(s.p, wp), max_rel_err(s.m, wm),
                   max_rel_err(s.v, wv)});
}
}  // namespace

TEST_CASE("adam_step equals torch::optim::AdamW over 5 steps to float rounding on every instruction set") {
  IsaGuard guard;
  for (Isa isa : isas_here()) {
    force_isa(isa);
    for (std::int64_t n : {std::int64_t(7), std::int64_t(1000003)}) {
      const std::string isa_s = isa_name(isa);
      CAPTURE(isa_s);
      CAPTURE(n);
      CHECK(compare_with_torch(true, n, 1.0, 5) < 5e-6);
    }
  }
}

TEST_CASE("adam_step with adamw=false equals torch::optim::Adam with L2 weight decay") {
  IsaGuard guard;
  for (Isa isa : isas_here()) {
    force_isa(isa);
    const std::string isa_s = isa_name(isa);
    CAPTURE(isa_s);
    CHECK(compare_with_torch(false, 100003, 1.0, 5) < 5e-6);
  }
}

TEST_CASE("adam_step with grad_scale equals torch on the unscaled gradient") {
  CHECK(compare_with_torch(true, 4099, 65536.0, 4) < 5e-6);
}

// ---------------------------------------------------------------- determinism
TEST_CASE("adam_step results are bit-identical across instruction sets and thread counts") {
  IsaGuard guard;
  const std::int64_t n = 300007;
  ThreadPool one(1), two(2), three(3);
  std::vector<float> first_p;
  std::vector<std::uint16_t> first_out;
  for (Isa isa : isas_here()) {
    for (ThreadPool* pool : {&one, &two, &three}) {
      force_isa(isa);
      State s(n, 4);
      std::vector<std::uint16_t> out(static_cast<std::size_t>(n));
      AdamParams a = adamw_params();
      for (int step = 1; step <= 3; ++step) {
        a.step = step;
        auto g = randn(n, 0.01f, 400 + step);
        adam_step(a, s.p.data(), s.m.data(), s.v.data(), g.data(), n, out.data(), Half16::kBF16, *pool);
      }
      if (first_p.empty()) {
        first_p = s.p;
        first_out = out;
      } else {
        const std::string isa_s = isa_name(isa);
      CAPTURE(isa_s);
        CAPTURE(pool->threads());
        CHECK(std::memcmp(first_p.data(), s.p.data(), first_p.size() * 4) == 0);
        CHECK(first_out == out);
      }
    }
  }
}

TEST_CASE("adam_step writes the same 16-bit weights at any output alignment (streamed or not)") {
  IsaGuard guard;
  const std::int64_t n = 70001;  // spans two chunks: both start aligned alike
  for (Isa isa : isas_here()) {
    force_isa(isa);
    for (Half16 kind : {Half16::kBF16, Half16::kFP16}) {
      for (std::size_t offset : {0, 1, 3, 8, 16, 31}) {
        const std::string isa_s = isa_name(isa);
        CAPTURE(isa_s);
        CAPTURE(offset);
        std::vector<std::uint16_t> storage(static_cast<std::size_t>(n) + 64 + 32);
        // A 64-byte aligned base, then `offset` elements in.
        auto base = reinterpret_cast<std::uintptr_t>(storage.data());
        std::uint16_t* out = reinterpret_cast<std::uint16_t*>((base + 63) / 64 * 64) + offset;
        State s(n, 8);
        const auto g = randn(n, 0.01f, 1000);
        AdamParams a = adamw_params();
        adam_step(a, s.p.data(), s.m.data(), s.v.data(), g.data(), n, out, kind);
        int wrong = 0;
        for (std::int64_t i = 0; i < n; ++i) {
          const std::uint16_t want = kind == Half16::kBF16 ? float_to_bf16(s.p[std::size_t(i)]) : float_to_fp16(s.p[std::size_t(i)]);
          wrong += out[i] != want;
        }
        CHECK(wrong == 0);
      }
    }
  }
}

// ---------------------------------------------------------------- 16-bit gradients
TEST_CASE("adam_step on bf16/fp16 gradients equals the fp32 step on the same values") {
  IsaGuard guard;
  const std::int64_t n = 65543;
  for (Isa isa : isas_here()) {
    force_isa(isa);
    for (Half16 gkind : {Half16::kBF16, Half16::kFP16}) {
      const std::string isa_s = isa_name(isa);
      CAPTURE(isa_s);
      const std::string gkind_s = half16_name(gkind);
      CAPTURE(gkind_s);
      const auto g16 = to_half(randn(n, 0.01f, 500), gkind);
      const auto g32 = to_float(g16, gkind);  // exact
      State s16(n, 5), s32(n, 5);
      std::vector<std::uint16_t> out16(static_cast<std::size_t>(n)), out32(static_cast<std::size_t>(n));
      AdamParams a = adamw_params();
      AdamBuffers b;
      b.n = n;
      b.master = s16.p.data();
      b.exp_avg = s16.m.data();
      b.exp_avg_sq = s16.v.data();
      b.grad16 = g16.data();
      b.grad16_kind = gkind;
      b.out = out16.data();
      b.out_kind = Half16::kFP16;
      adam_step(a, b);
      adam_step(a, s32.p.data(), s32.m.data(), s32.v.data(), g32.data(), n, out32.data(), Half16::kFP16);
      CHECK(s16.p == s32.p);
      CHECK(s16.v == s32.v);
      CHECK(out16 == out32);
    }
  }
}

TEST_CASE("adam_step may write the new weights over its own 16-bit gradient buffer") {
  IsaGuard guard;
  const std::int64_t n = 1027;
  for (Isa isa : isas_here()) {
    force_isa(isa);
    const std::string isa_s = isa_name(isa);
    CAPTURE(isa_s);
    auto g = to_half(randn(n, 0.01f, 600), Half16::kBF16);
    auto inplace = g;
    State s1(n, 6), s2(n, 6);
    std::vector<std::uint16_t> out(static_cast<std::size_t>(n));
    AdamParams a = adamw_params();
    AdamBuffers b;
    b.n = n;
    b.master = s1.p.data();
    b.exp_avg = s1.m.data();
    b.exp_avg_sq = s1.v.data();
    b.grad16 = g.data();
    b.out = out.data();
    adam_step(a, b);
    b.master = s2.p.data();
    b.exp_avg = s2.m.data();
    b.exp_avg_sq = s2.v.data();
    b.grad16 = inplace.data();
    b.out = inplace.data();
    adam_step(a, b);
    CHECK(inplace == out);
    CHECK(s1.p == s2.p);
  }
}

// ---------------------------------------------------------------- norms and overflow
TEST_CASE("l2_norm_squared equals a double sum for fp32, bf16 and fp16 on every instruction set") {
  IsaGuard guard;
  for (Isa isa : isas_here()) {
    force_isa(isa);
    for (std::int64_t n : {std::int64_t(1), std::int64_t(7), std::int64_t(1000003)}) {
      const std::string isa_s = isa_name(isa);
      CAPTURE(isa_s);
      CAPTURE(n);
      const auto x = randn(n, 3.0f, 700);
      double want = 0;
      for (float e : x) want += double(e) * double(e);
      CHECK(l2_norm_squared(x.data(), n) == doctest::Approx(want).epsilon(1e-12));
      for (Half16 kind : {Half16::kBF16, Half16::kFP16}) {
        const auto h = to_half(x, kind);
        double want16 = 0;
        for (float e : to_float(h, kind)) want16 += double(e) * double(e);
        CHECK(l2_norm_squared(h.data(), kind, n) == doctest::Approx(want16).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("l2_norm_squared is not finite exactly when some element is inf or NaN") {
  IsaGuard guard;
  const std::int64_t n = 200003;
  for (Isa isa : isas_here()) {
    force_isa(isa);
    const std::string isa_s = isa_name(isa);
    CAPTURE(isa_s);
    auto x = randn(n, 1.0f, 800);
    x[12345] = std::numeric_limits<float>::max();  // huge but finite: no false overflow
    CHECK(std::isfinite(l2_norm_squared(x.data(), n)));
    for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                      std::numeric_limits<float>::quiet_NaN()}) {
      for (std::int64_t at : {std::int64_t(0), std::int64_t(n / 2), n - 1}) {
        auto y = x;
        y[static_cast<std::size_t>(at)] = bad;
        CAPTURE(at);
        CHECK_FALSE(std::isfinite(l2_norm_squared(y.data(), n)));
        for (Half16 kind : {Half16::kBF16, Half16::kFP16}) {
          auto h = to_half(randn(n, 1.0f, 801), kind);
          CHECK(std::isfinite(l2_norm_squared(h.data(), kind, n)));
          h[static_cast<std::size_t>(at)] = to_half({bad}, kind)[0];
          CHECK_FALSE(std::isfinite(l2_norm_squared(h.data(), kind, n)));
        }
      }
    }
  }
}

TEST_CASE("l2_norm_squared gives the same bits on any thread count") {
  const std::int64_t n = 1000003;
  const auto x = randn(n, 1.0f, 900);
  ThreadPool one(1), two(2), five(5);
  const double a = l2_norm_squared(x.data(), n, one);
  CHECK(a == l2_norm_squared(x.data(), n, two));
  CHECK(a == l2_norm_squared(x.data(), n, five));
}

// ---------------------------------------------------------------- bad input
TEST_CASE("adam_step rejects bad hyper-parameters naming the value") {
  std::vector<float> p(8), m(8), v(8), g(8);
  auto message_for = [&](AdamParams a) -> std::string {
    try {
      adam_step(a, p.data(), m.data(), v.data(), g.data(), 8);
    } catch (const zinf::Error& e) {
      CHECK_FALSE(e.hint().empty());
      return e.what();
    }
    return "no error";
  };
  AdamParams a;
  a.beta1 = 1.0;
  CHECK(message_for(a).find("beta1 = 1") != std::string::npos);
  a = AdamParams{};
  a.beta2 = -0.1;
  CHECK(message_for(a).find("beta2 = -0.1") != std::string::npos);
  a = AdamParams{};
  a.lr = std::nan("");
  CHECK(message_for(a).find("lr = nan") != std::string::npos);
  a = AdamParams{};
  a.step = 0;
  CHECK(message_for(a).find("step = 0") != std::string::npos);
  a = AdamParams{};
  a.grad_scale = 0;
  CHECK(message_for(a).find("grad_scale = 0") != std::string::npos);
  a = AdamParams{};
  a.eps = -1e-8;
  CHECK(message_for(a).find("eps = -1e-08") != std::string::npos);
  a = AdamParams{};
  a.weight_decay = -1;
  CHECK(message_for(a).find("weight_decay = -1") != std::string::npos);
}

TEST_CASE("adam_step rejects missing, doubled and overlapping buffers") {
  std::vector<float> p(16), m(16), v(16), g(16);
  std::vector<std::uint16_t> g16(16), out(16);
  AdamParams a;
  AdamBuffers b;
  b.n = 16;
  b.master = p.data();
  b.exp_avg = m.data();
  b.exp_avg_sq = v.data();
  CHECK_THROWS_WITH_AS(adam_step(a, b), "adam_step: no gradient buffer is set", zinf::Error);
  b.grad = g.data();
  b.grad16 = g16.data();
  CHECK_THROWS_WITH_AS(adam_step(a, b), "adam_step: both grad (fp32) and grad16 are set", zinf::Error);
  b.grad16 = nullptr;
  b.exp_avg_sq = m.data() + 8;
  CHECK_THROWS_WITH_AS(adam_step(a, b), "adam_step: buffers 'exp_avg' and 'exp_avg_sq' overlap", zinf::Error);
  b.exp_avg_sq = v.data();
  b.out = reinterpret_cast<std::uint16_t*>(g.data());
  CHECK_THROWS_WITH_AS(adam_step(a, b), "adam_step: buffers 'grad' and 'out' overlap", zinf::Error);
  b.out = out.data();
  b.exp_avg = nullptr;
  CHECK_THROWS_WITH_AS(adam_step(a, b), "adam_step: buffer 'exp_avg' is null", zinf::Error);
  b.exp_avg = m.data();
  b.n = -1;
  CHECK_THROWS_WITH_AS(adam_step(a, b), "adam_step: element count -1 is negative", zinf::Error);
  b.n = 0;
  CHECK_NOTHROW(adam_step(a, b));
  CHECK_THROWS_AS(l2_norm_squared(static_cast<const float*>(nullptr), 4), zinf::Error);
}

TEST_CASE("instruction sets parse by name and unknown names list the choices") {
  CHECK(parse_isa("avx512") == Isa::kAvx512);
  CHECK(parse_isa("scalar") == Isa::kScalar);
  CHECK_THROWS_WITH_AS(parse_isa("sse9"), "unknown instruction set 'sse9'", zinf::Error);
  try {
    parse_isa("neon");
  } catch (const zinf::Error& e) {
    CHECK(e.hint() == "use one of: auto, scalar, avx2, avx512");
    CHECK(e.code() == zinf::ExitCode::kUsage);
  }
  CHECK(isa_supported(Isa::kScalar));
  CHECK(isa_supported(best_isa()));
  IsaGuard guard;
  force_isa(Isa::kScalar);
  CHECK(active_isa() == Isa::kScalar);
  force_isa(Isa::kAuto);
  CHECK(active_isa() == best_isa());
}

namespace {

// The buffers of `s` with an fp32 gradient.
AdamBuffers buffers_of(State& s, const float* grad) {
  AdamBuffers b;
  b.n = static_cast<std::int64_t>(s.p.size());
  b.master = s.p.data();
  b.exp_avg = s.m.data();
  b.exp_avg_sq = s.v.data();
  b.grad = grad;
  return b;
}

}  // namespace

TEST_CASE("adam_step with no_decay runs steps them as weight_decay 0 and the rest as before, bit for bit") {
  IsaGuard guard;
  const std::int64_t n = 200003;  // several chunks; runs that start and end inside chunks and vectors
  const std::vector<FlatRange> exempt = {{0, 17}, {1000, 3}, {65530, 70000}, {199990, 13}};
  ThreadPool three(3);
  for (Isa isa : isas_here()) {
    for (const bool adamw : {true, false}) {
      force_isa(isa);
      const std::string isa_s = isa_name(isa);
      CAPTURE(isa_s);
      CAPTURE(adamw);
      State split(n, 8), decayed(n, 8), plain(n, 8);
      AdamParams a = adamw_params();
      a.adamw = adamw;
      AdamParams none = a;
      none.weight_decay = 0;
      for (int step = 1; step <= 2; ++step) {
        a.step = none.step = step;
        const auto g = randn(n, 0.01f, 700 + step);
        AdamBuffers b = buffers_of(split, g.data());
        b.no_decay = &exempt;
        adam_step(a, b, three);
        adam_step(a, decayed.p.data(), decayed.m.data(), decayed.v.data(), g.data(), n);
        adam_step(none, plain.p.data(), plain.m.data(), plain.v.data(), g.data(), n);
      }
      std::int64_t wrong = 0, in_runs = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        bool exempt_i = false;
        for (const auto& r : exempt) exempt_i |= i >= r.begin && i < r.end();
        in_runs += exempt_i;
        const State& want = exempt_i ? plain : decayed;
        wrong += std::memcmp(&want.p[i], &split.p[i], 4) != 0 || std::memcmp(&want.m[i], &split.m[i], 4) != 0 ||
                 std::memcmp(&want.v[i], &split.v[i], 4) != 0;
      }
      CHECK(in_runs == total_count(exempt));
      CHECK(wrong == 0);
      CHECK(split.p != decayed.p);  // the runs did change something
    }
  }
  // Ranges outside the buffer or out of order are refused.
  State s(10, 1);
  std::vector<float> g(10, 0.f);
  AdamBuffers b = buffers_of(s, g.data());
  const std::vector<FlatRange> outside = {{5, 6}}, unsorted = {{5, 2}, {1, 2}};
  for (const auto* bad : {&outside, &unsorted}) {
    b.no_decay = bad;
    CHECK_THROWS_AS(adam_step(adamw_params(), b), Error);
  }
}
