// zinf::offload — storage tiers.
// Implements: Tier (device, cpu, nvme), the home of a flat buffer, with its
// name as the DeepSpeed config spells it ("none" is the device).
#pragma once

#include <string>

namespace zinf::offload {

enum class Tier { kDevice, kCpu, kNvme };

// "none" (device), "cpu", "nvme".
const char* tier_name(Tier tier);

}  // namespace zinf::offload
