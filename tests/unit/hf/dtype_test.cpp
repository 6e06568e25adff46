// Tests for zinf::hf dtype conversion: every BF16/F16 value survives
// ->fp32->back, and fp32 -> BF16/F16 is round-to-nearest-even (checked
// against an oracle that picks the nearer of the two neighbours in double).
#include "hf/dtype.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"

using namespace zinf::hf;

namespace {

// Nearest of the values decode(t) and decode(t + 1) to f, ties to the even
// code; t is the code that truncation toward zero gives.
template <typename Decode>
std::uint16_t nearest_even(float f, std::uint16_t t, Decode decode) {
  const double lo = decode(t), hi = decode(static_cast<std::uint16_t>(t + 1));
  const double dl = std::fabs(static_cast<double>(f) - lo), dh = std::fabs(hi - static_cast<double>(f));
  if (dl < dh) return t;
  if (dh < dl) return static_cast<std::uint16_t>(t + 1);
  return (t & 1u) ? static_cast<std::uint16_t>(t + 1) : t;
}

std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace

TEST_CASE("hf dtype: every BF16 and F16 code round-trips through fp32") {
  for (std::uint32_t c = 0; c < 65536; ++c) {
    const auto h = static_cast<std::uint16_t>(c);
    const float b = float_from_bf16(h);
    if (!std::isnan(b)) REQUIRE(bf16_from_float(b) == h);
    const float f = float_from_f16(h);
    if (!std::isnan(f)) REQUIRE(f16_from_float(f) == h);
    else CHECK(std::isnan(float_from_f16(f16_from_float(f))));
  }
  CHECK(float_from_f16(0x3c00) == 1.0f);
  CHECK(float_from_f16(0x0001) == std::ldexp(1.0f, -24));
  CHECK(float_from_f16(0x7bff) == 65504.0f);
  CHECK(float_from_bf16(0x3f80) == 1.0f);
}

TEST_CASE("hf dtype: fp32 -> BF16 / F16 rounds to nearest, ties to even") {
  // Exact ties: 1 + 2^-8 lies halfway between bf16 1 and 1 + 2^-7 -> 1 (even);
  // 1 + 3*2^-8 -> 1 + 2^-6 (even).
  CHECK(bf16_from_float(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);
  CHECK(bf16_from_float(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
  CHECK(f16_from_float(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  CHECK(f16_from_float(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  CHECK(f16_from_float(65519.0f) == 0x7bff);
  CHECK(f16_from_float(65520.0f) == 0x7c00);  // the tie above the largest finite goes to infinity
  CHECK(f16_from_float(-1e6f) == 0xfc00);
  CHECK(f16_from_float(std::ldexp(1.0f, -25)) == 0x0000);  // half the smallest subnormal: tie to 0
  CHECK(f16_from_float(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(std::isnan(float_from_bf16(bf16_from_float(std::numeric_limits<float>::quiet_NaN()))));

  std::mt19937 rng(7);
  std::uniform_int_distribution<std::uint32_t> any;
  for (int i = 0; i < 200000; ++i) {
    std::uint32_t u = any(rng);
    float f;
    std::memcpy(&f, &u, 4);
    if (std::isnan(f) || std::isinf(f)) continue;
    const auto tb = static_cast<std::uint16_t>(u >> 16);
    if ((tb & 0x7fffu) < 0x7f7fu) REQUIRE(bf16_from_float(f) == nearest_even(f, tb, float_from_bf16));
    // Within F16's finite range, scale into it and compare with the oracle.
    int exponent = 0;
    const float g = std::ldexp(std::frexp(f, &exponent), static_cast<int>(u % 40) - 24);
    const float ag = std::fabs(g);
    if (ag >= 65504.0f) continue;
    // Truncation toward zero of |g|: binary search over the ordered codes.
    std::uint16_t lo = 0, hi = 0x7bff;
    while (lo < hi) {
      const auto mid = static_cast<std::uint16_t>((lo + hi + 1) / 2);
      if (float_from_f16(mid) <= ag) lo = mid; else hi = static_cast<std::uint16_t>(mid - 1);
    }
    const std::uint16_t want = static_cast<std::uint16_t>(nearest_even(ag, lo, float_from_f16) | (bits(g) >> 31 << 15));
    REQUIRE(f16_from_float(g) == want);
  }
}

TEST_CASE("hf dtype: buffers convert little-endian, and unknown dtypes name what is supported") {
  const std::vector<float> src = {1.0f, -2.5f, 3.140625f, 0.0f};
  std::vector<unsigned char> b(src.size() * 2);
  std::vector<float> back(src.size());
  for (Dtype d : {Dtype::kBF16, Dtype::kF16}) {
    from_float(d, src.data(), b.data(), src.size());
    to_float(d, b.data(), back.data(), src.size());
    CHECK(back == src);  // all exactly representable in both
  }
  from_float(Dtype::kBF16, src.data(), b.data(), 1);
  CHECK(b[0] == 0x80);
  CHECK(b[1] == 0x3f);
  CHECK(dtype_of("BF16", "t") == Dtype::kBF16);
  CHECK(element_bytes(dtype_of("F32", "t")) == 4);
  try {
    dtype_of("I64", "tensor 'x' in a.safetensors");
    FAIL("no error");
  } catch (const zinf::Error& e) {
    CHECK(std::string(e.what()).find("tensor 'x' in a.safetensors has dtype 'I64'") != std::string::npos);
    CHECK(e.hint() == "supported: F32, BF16, F16");
    CHECK(e.code() == zinf::ExitCode::kUsage);
  }
}
