// zinf::core — the overflow errors of checked arithmetic (see checked.h).
#include "core/checked.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace zinf {

void throw_overflow(const std::string& what, std::initializer_list<NamedSize> inputs, const std::string& hint) {
  std::string named;
  for (const auto& in : inputs) named += (named.empty() ? "" : ", ") + std::string(in.name) + " " + std::to_string(in.value);
  throw UsageError(what + " would overflow 64-bit integers" + (named.empty() ? "" : " (" + named + ")"),
                   hint.empty() ? "use smaller sizes: each size zinf computes from them must stay below 2^63 (9.2e18)"
                                : hint);
}

std::int64_t checked_from_double(double value, const std::string& what) {
  if (!std::isfinite(value) || value < 0 || value >= 9223372036854775808.0) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    throw UsageError(what + " is " + text + ": not a size that fits 64-bit integers",
                     "use smaller sizes: each size zinf computes from them must stay below 2^63 (9.2e18)");
  }
  return static_cast<std::int64_t>(value);
}

std::int64_t checked_mul(std::int64_t a, std::int64_t b, const std::string& what) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) throw_overflow(what + " (" + std::to_string(a) + " x " + std::to_string(b) + ")", {});
  return r;
}

std::int64_t checked_add(std::int64_t a, std::int64_t b, const std::string& what) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) throw_overflow(what + " (" + std::to_string(a) + " + " + std::to_string(b) + ")", {});
  return r;
}

}  // namespace zinf
