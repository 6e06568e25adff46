// zinf::hf — element conversion between safetensors dtypes and fp32.
// Owns: F32/BF16/F16 little-endian bytes -> fp32 (exact: every bf16 and f16
// value, subnormals, infinities and NaN included, is an fp32 value) and fp32
// -> BF16/F16 with round-to-nearest-even (ties to even, overflow to
// infinity, NaN stays a quiet NaN of the same sign), as torch's .to() does.
// Callers convert a piece at a time into their own buffers. No LibTorch here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace zinf::hf {

enum class Dtype { kF32, kBF16, kF16 };

// "F32" | "BF16" | "F16" (safetensors' names); anything else is a UsageError
// naming `what` (e.g. the tensor and file) and the supported dtypes.
Dtype dtype_of(const std::string& name, const std::string& what);
const char* dtype_name(Dtype d);
std::size_t element_bytes(Dtype d);

std::uint16_t bf16_from_float(float f);
std::uint16_t f16_from_float(float f);
float float_from_bf16(std::uint16_t h);
float float_from_f16(std::uint16_t h);

// Converts `count` elements of dtype `from`, little-endian bytes at `src`
// (any alignment), into fp32 at `dst`.
void to_float(Dtype from, const void* src, float* dst, std::size_t count);
// Converts `count` fp32 elements at `src` into little-endian `to` bytes at `dst`.
void from_float(Dtype to, const float* src, void* dst, std::size_t count);

}  // namespace zinf::hf
