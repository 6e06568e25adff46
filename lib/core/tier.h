// zinf::core — where model state lives.
// Implements: Tier, the one vocabulary for the home of a buffer — the device
// (the GPU, or the CPU standing in for it), CPU memory (pinned on CUDA
// builds), or NVMe swap files — that the configuration (offload_*.device),
// the planner and the engine all use, and its names: tier_name() as
// DeepSpeed's config spells it ("none" is the device), tier_label() for
// people.
#pragma once

namespace zinf {

enum class Tier { kDevice, kCpu, kNvme };

// "none" (the device: nothing offloaded), "cpu", "nvme".
const char* tier_name(Tier tier);
// "the device", "CPU memory", "NVMe".
const char* tier_label(Tier tier);

}  // namespace zinf
