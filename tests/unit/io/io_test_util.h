// Test helpers for lib/io: random bytes, small tmpfs/ramfs mounts (skipped
// where mounting is not allowed), and a scoped fault hook.
#pragma once

#include <sys/mount.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "io/file.h"

namespace zinf::test {

inline std::vector<unsigned char> random_bytes(std::size_t n, std::uint64_t seed) {
  std::vector<unsigned char> v(n);
  std::mt19937_64 rng(seed);
  for (auto& b : v) b = static_cast<unsigned char>(rng());
  return v;
}

// A filesystem mounted on `dir` for the life of the object; ok() is false
// when this process may not mount (not root, or a container without
// CAP_SYS_ADMIN): tests then skip with a message.
class ScopedMount {
 public:
  ScopedMount(const std::string& dir, const char* type, const char* options)
      : dir_(dir), ok_(::mount(type, dir.c_str(), type, 0, options) == 0) {}
  ~ScopedMount() {
    if (ok_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool ok() const { return ok_; }

 private:
  std::string dir_;
  bool ok_;
};

class ScopedFault {
 public:
  explicit ScopedFault(io::testing::FaultHook hook) { io::testing::set_fault_hook(std::move(hook)); }
  ~ScopedFault() { io::testing::set_fault_hook({}); }
};

}  // namespace zinf::test
