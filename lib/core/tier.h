// zinf::core — where model state lives.
// Implements: Tier, the one vocabulary for the home of a buffer — the device
// (the GPU, or the CPU standing in for it), CPU memory (pinned on CUDA
// builds), or NVMe swap files — that the configuration (offload_*.device),
// the planner and the engine all use, and its names: tier_name() as
// DeepSpeed's config spells it ("none" is the device), tier_label() for
// people; runs_on_zero_engine(), which engine a stage and optimizer home take.
#pragma once

namespace zinf {

enum class Tier { kDevice, kCpu, kNvme };

// "none" (the device: nothing offloaded), "cpu", "nvme".
const char* tier_name(Tier tier);
// "the device", "CPU memory", "NVMe".
const char* tier_label(Tier tier);

// Which engine trains a configuration: the ZeRO engine (lib/zero) at stage 3
// and whenever the optimizer is offloaded, DataParallel (stages 0-2 in GPU
// memory) otherwise. The trainer, the inference model and the planner all
// ask this one rule.
inline bool runs_on_zero_engine(int zero_stage, Tier optimizer_home) {
  return zero_stage >= 3 || optimizer_home != Tier::kDevice;
}

}  // namespace zinf
