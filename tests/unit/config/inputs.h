// config tests: the inputs build_config takes, as the suites write them:
// sources from flags and ZINF_* values with the source tree's presets, and
// the machines "auto" is resolved for.
#pragma once

#include <string>
#include <vector>

#include "config/build.h"

namespace zinf::config::testing {

inline const std::string kPresets = std::string(ZINF_SOURCE_DIR) + "/presets";

// `values` as flags and `env` as ZINF_* variables, presets from presets/.
inline Sources flags(std::vector<OptionValue> values, std::vector<OptionValue> env = {}) {
  Sources s;
  s.flags = std::move(values);
  s.env = std::move(env);
  s.presets_dir = kPresets;
  return s;
}

// A CPU-only machine with 16 GiB.
inline MachineFacts cpu_machine() {
  MachineFacts m;
  m.cpu_memory_bytes = 16LL << 30;
  return m;
}

// Two GPUs, bf16-capable unless told otherwise.
inline MachineFacts gpu_machine(bool bf16 = true) {
  MachineFacts m = cpu_machine();
  m.cuda_devices = 2;
  m.bf16_supported = bf16;
  return m;
}

}  // namespace zinf::config::testing
