// zinf::monitor — known GPUs' peak FLOP/s (NVIDIA datasheets, dense).
#include "monitor/peak_flops.h"

#include <cctype>

namespace zinf::monitor {

namespace {

struct Known {
  const char* key;       // matched as a word in the device name
  const char* unless;    // a word that must be absent ("" = none)
  double half, fp32;     // bf16/fp16 dense tensor TFLOP/s, fp32 TFLOP/s
  bool bf16;             // the tensor cores do bf16
};

// First match wins: the specific names before the general ones.
const Known kKnown[] = {
    {"H200 NVL", "", 835.5, 60.0, true},
    {"H200", "", 989.4, 66.9, true},       // H200 SXM
    {"H100 NVL", "", 835.5, 60.0, true},
    {"H100 PCIe", "", 756.5, 51.2, true},
    {"H100", "", 989.4, 66.9, true},       // H100 SXM5 ("NVIDIA H100 80GB HBM3")
    {"GH200", "", 989.4, 66.9, true},
    {"A100", "", 312.0, 19.5, true},
    {"L40S", "", 362.05, 91.6, true},
    {"L40", "L40S", 181.05, 90.5, true},
    {"L4", "L40", 121.0, 30.3, true},
    {"A10G", "", 70.0, 31.2, true},        // AWS A10G (NVIDIA: 70 TFLOP/s dense bf16)
    {"A10", "A100", 125.0, 31.2, true},
    {"RTX 4090", "", 165.2, 82.6, true},   // fp16/bf16 with fp32 accumulate
    {"RTX 3090", "", 71.0, 35.6, true},
    {"V100", "", 125.0, 15.7, false},
};

// `word` occurs in `name` with no letter or digit right after it (so "A10" is not "A100").
bool has_word(const std::string& name, const std::string& word) {
  for (std::size_t at = name.find(word); at != std::string::npos; at = name.find(word, at + 1)) {
    const std::size_t end = at + word.size();
    const bool before_ok = at == 0 || !std::isalnum(static_cast<unsigned char>(name[at - 1]));
    const bool after_ok = end == name.size() || !std::isalnum(static_cast<unsigned char>(name[end]));
    if (before_ok && after_ok) return true;
  }
  return false;
}

}  // namespace

std::optional<double> known_peak_tflops(const std::string& device_name, const std::string& precision) {
  for (const Known& k : kKnown) {
    if (!has_word(device_name, k.key) || (k.unless[0] && has_word(device_name, k.unless))) continue;
    if (precision == "fp32") return k.fp32;
    if (precision == "bf16" && !k.bf16) return std::nullopt;
    return k.half;
  }
  return std::nullopt;
}

}  // namespace zinf::monitor
