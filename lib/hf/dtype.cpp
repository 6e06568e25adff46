// zinf::hf — fp32 <-> BF16/F16 element conversion (round-to-nearest-even).
#include "hf/dtype.h"

#include <cstring>

#include "core/error.h"

namespace zinf::hf {
namespace {

std::uint32_t bits_of(float f) {
  std::uint32_t u = 0;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float float_of(std::uint32_t u) {
  float f = 0;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace

Dtype dtype_of(const std::string& name, const std::string& what) {
  if (name == "F32") return Dtype::kF32;
  if (name == "BF16") return Dtype::kBF16;
  if (name == "F16") return Dtype::kF16;
  throw UsageError(what + " has dtype '" + name + "', which is not supported",
                   "supported: F32, BF16, F16");
}

const char* dtype_name(Dtype d) {
  switch (d) {
    case Dtype::kF32: return "F32";
    case Dtype::kBF16: return "BF16";
    case Dtype::kF16: return "F16";
  }
  return "F32";
}

std::size_t element_bytes(Dtype d) { return d == Dtype::kF32 ? 4 : 2; }

std::uint16_t bf16_from_float(float f) {
  const std::uint32_t u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  const std::uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>((u + rounding) >> 16);
}

float float_from_bf16(std::uint16_t h) { return float_of(static_cast<std::uint32_t>(h) << 16); }

std::uint16_t f16_from_float(float f) {
  const std::uint32_t u = bits_of(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t mag = u & 0x7fffffffu;
  if (mag > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((mag >> 13) & 0x3ffu));  // NaN
  if (mag >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  const int exp = static_cast<int>(mag >> 23) - 127;
  if (exp >= -14) {  // normal f16: drop 13 mantissa bits, nearest-even
    const std::uint32_t rebased = mag - (112u << 23);  // exponent bias 127 -> 15
    const std::uint32_t rounding = 0xfffu + ((rebased >> 13) & 1u);
    return static_cast<std::uint16_t>(sign | ((rebased + rounding) >> 13));
  }
  if (exp < -25) return sign;  // below half the smallest subnormal: zero
  // Subnormal f16: value = m * 2^-24; shift the full mantissa, nearest-even.
  const std::uint32_t mant = (mag & 0x7fffffu) | 0x800000u;
  const int shift = -exp - 1;  // 14..24: value / 2^-24 = mant * 2^(exp + 1)
  const std::uint32_t q = mant >> shift;
  const std::uint32_t rem = mant & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1);
  const std::uint32_t r = (rem > half || (rem == half && (q & 1u))) ? q + 1 : q;
  return static_cast<std::uint16_t>(sign | r);
}

float float_from_f16(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return float_of(sign | 0x7f800000u | (mant << 13));
  if (exp != 0) return float_of(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return float_of(sign);
  int e = -14;  // subnormal: normalise
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return float_of(sign | (static_cast<std::uint32_t>(e + 127) << 23) | ((mant & 0x3ffu) << 13));
}

void to_float(Dtype from, const void* src, float* dst, std::size_t count) {
  const auto* bytes = static_cast<const unsigned char*>(src);
  if (from == Dtype::kF32) {
    std::memcpy(dst, src, count * sizeof(float));
    return;
  }
  for (std::size_t i = 0; i < count; ++i) {
    const auto h = static_cast<std::uint16_t>(bytes[2 * i] | (bytes[2 * i + 1] << 8));
    dst[i] = from == Dtype::kBF16 ? float_from_bf16(h) : float_from_f16(h);
  }
}

void from_float(Dtype to, const float* src, void* dst, std::size_t count) {
  auto* bytes = static_cast<unsigned char*>(dst);
  if (to == Dtype::kF32) {
    std::memcpy(dst, src, count * sizeof(float));
    return;
  }
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint16_t h = to == Dtype::kBF16 ? bf16_from_float(src[i]) : f16_from_float(src[i]);
    bytes[2 * i] = static_cast<unsigned char>(h & 0xffu);
    bytes[2 * i + 1] = static_cast<unsigned char>(h >> 8);
  }
}

}  // namespace zinf::hf
