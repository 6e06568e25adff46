// zinf::plan — DeepSpeed's published model-state memory formulas (see the header).
#include "plan/deepspeed_reference.h"

#include <algorithm>

namespace zinf::plan::deepspeed {

ModelStatesNeed zero2_model_states(std::int64_t total_params, int gpus_per_node, int nodes, bool cpu_offload,
                                   double additional_buffer_factor) {
  const double p = static_cast<double>(total_params);
  const int total_gpus = gpus_per_node * nodes;
  ModelStatesNeed need;
  if (cpu_offload) {
    need.gpu_bytes = 2 * total_params;
    need.cpu_bytes = static_cast<std::int64_t>(p * std::max(4 * total_gpus, 16) * additional_buffer_factor);
  } else {
    need.gpu_bytes = 4 * total_params + static_cast<std::int64_t>(16 * p / total_gpus);
    need.cpu_bytes = static_cast<std::int64_t>(p * 4 * gpus_per_node * additional_buffer_factor);
  }
  return need;
}

ModelStatesNeed zero3_model_states(std::int64_t total_params, std::int64_t largest_layer_params, int gpus_per_node,
                                   int nodes, bool cpu_offload, bool cpu_offload_params, bool zero_init,
                                   double additional_buffer_factor) {
  const double p = static_cast<double>(total_params);
  const int total_gpus = gpus_per_node * nodes;
  const double per_node = 1.0 / nodes;  // DeepSpeed's "gpus_factor"
  const std::int64_t largest_layer_bytes = 4 * largest_layer_params;
  double cpu = 0;
  ModelStatesNeed need;
  if (cpu_offload && cpu_offload_params) {
    need.gpu_bytes = largest_layer_bytes;
    cpu = zero_init ? p * 18 * per_node : p * std::max(4.0 * gpus_per_node, 18 * per_node);
  } else if (cpu_offload) {
    need.gpu_bytes = largest_layer_bytes + static_cast<std::int64_t>(2 * p / total_gpus);
    cpu = zero_init ? p * 16 * per_node : p * std::max(4.0 * gpus_per_node, 16 * per_node);
  } else {
    need.gpu_bytes = largest_layer_bytes + static_cast<std::int64_t>(18 * p / total_gpus);
    cpu = zero_init ? static_cast<double>(largest_layer_params) * 4 * gpus_per_node : p * 4 * gpus_per_node;
  }
  need.cpu_bytes = static_cast<std::int64_t>(cpu * additional_buffer_factor);
  return need;
}

}  // namespace zinf::plan::deepspeed
