// zinf::core — Tier's names.
#include "core/tier.h"

namespace zinf {

const char* tier_name(Tier tier) {
  switch (tier) {
    case Tier::kDevice: return "none";
    case Tier::kCpu: return "cpu";
    case Tier::kNvme: return "nvme";
  }
  return "?";
}

const char* tier_label(Tier tier) {
  switch (tier) {
    case Tier::kDevice: return "the device";
    case Tier::kCpu: return "CPU memory";
    case Tier::kNvme: return "NVMe";
  }
  return "?";
}

}  // namespace zinf
