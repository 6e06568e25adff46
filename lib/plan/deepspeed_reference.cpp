// zinf::plan — DeepSpeed's published model-state memory formulas (see the header),
// in checked arithmetic: a size beyond int64 is a usage error, never negative.
#include "plan/deepspeed_reference.h"

#include <algorithm>

#include "core/checked.h"

namespace zinf::plan::deepspeed {

ModelStatesNeed zero2_model_states(std::int64_t total_params, int gpus_per_node, int nodes, bool cpu_offload,
                                   double additional_buffer_factor) {
  const double p = static_cast<double>(total_params);
  const int total_gpus = gpus_per_node * nodes;
  ModelStatesNeed need;
  if (cpu_offload) {
    need.gpu_bytes = checked_mul(2, total_params, "DeepSpeed's ZeRO-2 GPU bytes");
    need.cpu_bytes = checked_from_double(p * std::max(4 * total_gpus, 16) * additional_buffer_factor,
                                         "DeepSpeed's ZeRO-2 CPU bytes");
  } else {
    need.gpu_bytes = checked_add(checked_mul(4, total_params, "DeepSpeed's ZeRO-2 GPU bytes"),
                                 checked_from_double(16 * p / total_gpus, "DeepSpeed's ZeRO-2 GPU bytes"),
                                 "DeepSpeed's ZeRO-2 GPU bytes");
    need.cpu_bytes = checked_from_double(p * 4 * gpus_per_node * additional_buffer_factor, "DeepSpeed's ZeRO-2 CPU bytes");
  }
  return need;
}

ModelStatesNeed zero3_model_states(std::int64_t total_params, std::int64_t largest_layer_params, int gpus_per_node,
                                   int nodes, bool cpu_offload, bool cpu_offload_params, bool zero_init,
                                   double additional_buffer_factor) {
  const double p = static_cast<double>(total_params);
  const int total_gpus = gpus_per_node * nodes;
  const double per_node = 1.0 / nodes;  // DeepSpeed's "gpus_factor"
  const std::int64_t largest_layer_bytes = checked_mul(4, largest_layer_params, "DeepSpeed's largest layer bytes");
  double cpu = 0;
  ModelStatesNeed need;
  if (cpu_offload && cpu_offload_params) {
    need.gpu_bytes = largest_layer_bytes;
    cpu = zero_init ? p * 18 * per_node : p * std::max(4.0 * gpus_per_node, 18 * per_node);
  } else if (cpu_offload) {
    need.gpu_bytes = checked_add(largest_layer_bytes, checked_from_double(2 * p / total_gpus, "DeepSpeed's ZeRO-3 GPU bytes"),
                                 "DeepSpeed's ZeRO-3 GPU bytes");
    cpu = zero_init ? p * 16 * per_node : p * std::max(4.0 * gpus_per_node, 16 * per_node);
  } else {
    need.gpu_bytes = checked_add(largest_layer_bytes, checked_from_double(18 * p / total_gpus, "DeepSpeed's ZeRO-3 GPU bytes"),
                                 "DeepSpeed's ZeRO-3 GPU bytes");
    cpu = zero_init ? static_cast<double>(largest_layer_params) * 4 * gpus_per_node : p * 4 * gpus_per_node;
  }
  need.cpu_bytes = checked_from_double(cpu * additional_buffer_factor, "DeepSpeed's ZeRO-3 CPU bytes");
  return need;
}

}  // namespace zinf::plan::deepspeed
