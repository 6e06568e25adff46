// zinf::core — integer arithmetic on sizes that refuses to overflow.
// Implements: CheckedInt, an int64 that remembers whether any step of a
// formula overflowed (so the formula reads plainly and is checked once, with
// one message naming what was computed and its inputs), checked_mul /
// checked_add for single steps, and checked_from_double for sizes computed in
// floating point. Overflow is a zinf::UsageError (exit code 2):
// only sizes a user gave can get that large. Built on __builtin_*_overflow.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

namespace zinf {

// One input of a computation, for the message: {"hidden", 4096}.
struct NamedSize {
  const char* name;
  std::int64_t value;
};

// Throws UsageError "<what> would overflow 64-bit integers (hidden 9000000000, layers 1)".
[[noreturn]] void throw_overflow(const std::string& what, std::initializer_list<NamedSize> inputs,
                                 const std::string& hint = {});

class CheckedInt {
 public:
  constexpr CheckedInt(std::int64_t v = 0) : value_(v) {}  // NOLINT: implicit, so formulas mix in plain ints

  friend CheckedInt operator*(CheckedInt a, CheckedInt b) {
    CheckedInt r;
    r.overflow_ = a.overflow_ || b.overflow_ || __builtin_mul_overflow(a.value_, b.value_, &r.value_);
    return r;
  }
  friend CheckedInt operator+(CheckedInt a, CheckedInt b) {
    CheckedInt r;
    r.overflow_ = a.overflow_ || b.overflow_ || __builtin_add_overflow(a.value_, b.value_, &r.value_);
    return r;
  }
  friend CheckedInt operator-(CheckedInt a, CheckedInt b) {
    CheckedInt r;
    r.overflow_ = a.overflow_ || b.overflow_ || __builtin_sub_overflow(a.value_, b.value_, &r.value_);
    return r;
  }
  CheckedInt& operator+=(CheckedInt b) { return *this = *this + b; }

  bool overflowed() const { return overflow_; }
  // The value; throw_overflow(what, inputs, hint) when a step overflowed.
  std::int64_t get(const std::string& what, std::initializer_list<NamedSize> inputs, const std::string& hint = {}) const {
    if (overflow_) throw_overflow(what, inputs, hint);
    return value_;
  }

 private:
  std::int64_t value_ = 0;
  bool overflow_ = false;
};

// A size computed in floating point, as an integer; UsageError naming
// `what` and the value when it is not finite, negative, or not below 2^63
// (a cast would be undefined there, and in practice negative).
std::int64_t checked_from_double(double value, const std::string& what);

// a * b and a + b; UsageError naming `what` and both operands on overflow.
std::int64_t checked_mul(std::int64_t a, std::int64_t b, const std::string& what);
std::int64_t checked_add(std::int64_t a, std::int64_t b, const std::string& what);

}  // namespace zinf
