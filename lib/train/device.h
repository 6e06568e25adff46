// zinf::train — the device and precision a run computes in.
// Implements: pick_device() (CPU, or the CUDA device of --gpus / LOCAL_RANK,
// with an error that says why CUDA is not there) and model_dtype() (the
// parameters' and activations' dtype for the precision, refusing fp16 on CPU),
// shared by the trainer, `zinf eval` and `zinf generate`.
#pragma once

#include <torch/torch.h>

#include "config/settings.h"

namespace zinf::train {

// On several ranks each rank's GPU follows its LOCAL_RANK (--gpus was
// applied by the launcher through CUDA_VISIBLE_DEVICES); alone, --gpus picks it.
torch::Device pick_device(const config::Settings& s, bool several_ranks, int local_rank);

// bf16 / fp16 / fp32 by s.precision on `device`; UsageError for fp16 on CPU,
// a warning (once) for bf16 on CPU.
torch::Dtype model_dtype(const config::Settings& s, const torch::Device& device);

}  // namespace zinf::train
