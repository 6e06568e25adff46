// optim: host gradient accumulation — assign then add, fp32 and bf16/fp16
// inputs, the fused sum of squares, independence from the thread count.
#include "optim/grad_accumulate.h"

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

using namespace zinf;
using namespace zinf::optim;

TEST_CASE("accumulate_grad assigns, then adds, and returns the sum of squares of the result") {
  const std::int64_t n = 300001;  // several pool chunks and a ragged tail
  std::vector<float> a(n), b(n), acc(n, 123.f);
  for (std::int64_t i = 0; i < n; ++i) {
    a[i] = std::sin(0.001f * float(i));
    b[i] = 0.5f * std::cos(0.003f * float(i));
  }
  const double s1 = accumulate_grad(acc.data(), a.data(), n, /*assign=*/true);
  double want1 = 0;
  for (float x : a) want1 += double(x) * x;
  CHECK(acc == a);
  CHECK(s1 == doctest::Approx(want1).epsilon(1e-12));
  const double s2 = accumulate_grad(acc.data(), b.data(), n, /*assign=*/false);
  double want2 = 0;
  std::int64_t wrong = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    wrong += acc[i] != a[i] + b[i];
    want2 += double(a[i] + b[i]) * (a[i] + b[i]);
  }
  CHECK(wrong == 0);
  CHECK(s2 == doctest::Approx(want2).epsilon(1e-12));
  // the same bits with one thread
  ThreadPool one(1);
  std::vector<float> acc1(n);
  accumulate_grad(acc1.data(), a.data(), n, true, true, one);
  CHECK(accumulate_grad(acc1.data(), b.data(), n, false, true, one) == s2);
  CHECK(acc1 == acc);
  // without the norm: the same sums, 0 returned
  std::vector<float> acc2(n);
  CHECK(accumulate_grad(acc2.data(), a.data(), n, true, false) == 0.0);
  accumulate_grad(acc2.data(), b.data(), n, false, false);
  CHECK(acc2 == acc);
}

TEST_CASE("16-bit gradients convert exactly; a 16-bit accumulator adds in float and rounds once") {
  const std::int64_t n = 70000;
  std::vector<std::uint16_t> g(n), acc16(n);
  std::vector<float> acc(n, -1.f);
  for (std::int64_t i = 0; i < n; ++i) g[i] = float_to_bf16(0.01f * float(i % 977) - 3.f);
  const double s = accumulate_grad(acc.data(), g.data(), Half16::kBF16, n, true);
  double want = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float f = bf16_to_float(g[i]);
    want += double(f) * f;
    if (acc[i] != f) {
      FAIL_CHECK("element " << i);
      break;
    }
  }
  CHECK(s == doctest::Approx(want).epsilon(1e-12));
  accumulate_grad(acc16.data(), g.data(), Half16::kBF16, n, true);
  CHECK(acc16 == g);
  accumulate_grad(acc16.data(), g.data(), Half16::kBF16, n, false);
  for (std::int64_t i = 0; i < n; i += 997) CHECK(acc16[i] == float_to_bf16(2.f * bf16_to_float(g[i])));
  std::vector<std::uint16_t> h(n);
  for (std::int64_t i = 0; i < n; ++i) h[i] = float_to_fp16(0.001f * float(i % 300));
  std::vector<float> acch(n);
  accumulate_grad(acch.data(), h.data(), Half16::kFP16, n, true);
  CHECK(acch[299] == fp16_to_float(h[299]));
  // inf/NaN shows in the sum
  g[5] = float_to_bf16(INFINITY);
  CHECK_FALSE(std::isfinite(accumulate_grad(acc.data(), g.data(), Half16::kBF16, n, false)));
}
