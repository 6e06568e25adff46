// zinf::plan — DeepSpeed's published model-state memory formulas.
// Implements: the arithmetic of DeepSpeed's
//   deepspeed.runtime.zero.stage_1_and_2.estimate_zero2_model_states_mem_needs
//   deepspeed.runtime.zero.stage3.estimate_zero3_model_states_mem_needs
// (the functions behind estimate_zero{2,3}_model_states_mem_needs_all_live and
// _all_cold), written from their documentation (DeepSpeed
// docs/code-docs/source/memory.rst) so zinf's own estimate (plan/estimate.h)
// can be checked against them. zinf does not use these to plan; they are the
// reference its model-state floor is compared with (docs/estimates.md says
// where and why zinf differs).
#pragma once

#include <cstdint>

namespace zinf::plan::deepspeed {

// DeepSpeed's default "additional_buffer_factor": its CPU figures are scaled
// by 1.5 to be conservative. zinf counts its buffers instead (estimate.h).
constexpr double kAdditionalBufferFactor = 1.5;

struct ModelStatesNeed {
  std::int64_t cpu_bytes = 0;  // per node
  std::int64_t gpu_bytes = 0;  // per GPU
};

// ZeRO-1/2. With cpu_offload: GPU holds the 16-bit parameters (2 B/param);
// CPU holds fp32 master, gradients and Adam moments. Without: GPU holds 16-bit
// parameters and gradients (4 B/param) plus 16 B/param / total GPUs; CPU only
// the fp32 model while it is built (4 B/param per GPU process).
ModelStatesNeed zero2_model_states(std::int64_t total_params, int gpus_per_node, int nodes, bool cpu_offload,
                                   double additional_buffer_factor = kAdditionalBufferFactor);

// ZeRO-3. largest_layer_params: parameters of the largest module gathered at
// once (GPU needs 4 B each: 16-bit parameters and gradients). zero_init: the
// model is built partitioned (deepspeed.zero.Init) rather than whole on CPU.
ModelStatesNeed zero3_model_states(std::int64_t total_params, std::int64_t largest_layer_params, int gpus_per_node,
                                   int nodes, bool cpu_offload, bool cpu_offload_params, bool zero_init,
                                   double additional_buffer_factor = kAdditionalBufferFactor);

}  // namespace zinf::plan::deepspeed
