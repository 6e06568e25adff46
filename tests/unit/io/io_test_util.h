// Test helpers for lib/io: random bytes and a scoped fault hook (small
// tmpfs/ramfs mounts: ScopedMount in support/test_util.h).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "io/file.h"
#include "support/test_util.h"

namespace zinf::test {

inline std::vector<unsigned char> random_bytes(std::size_t n, std::uint64_t seed) {
  std::vector<unsigned char> v(n);
  std::mt19937_64 rng(seed);
  for (auto& b : v) b = static_cast<unsigned char>(rng());
  return v;
}

class ScopedFault {
 public:
  explicit ScopedFault(io::testing::FaultHook hook) { io::testing::set_fault_hook(std::move(hook)); }
  ~ScopedFault() { io::testing::set_fault_hook({}); }
};

}  // namespace zinf::test
