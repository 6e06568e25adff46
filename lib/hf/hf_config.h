// zinf::hf — a Hugging Face config.json as a ModelSpec.
// Owns: reading the architecture fields of model_type gpt2, llama, mistral
// and qwen2 (both the older top-level rope_theta + rope_scaling and
// transformers 5's rope_parameters) and refusing, by field name, anything
// zinf does not build (other model types, mixture of experts, MLP biases,
// other activations, sliding windows). seq_len is set to the position count;
// the caller narrows it to the run's.
#pragma once

#include <string>

#include "core/model_spec.h"

namespace zinf::hf {

// `text` is the config.json's contents; `file` names it in errors.
ModelSpec parse_hf_config(const std::string& text, const std::string& file);
// Reads DIR/config.json.
ModelSpec read_hf_config(const std::string& dir);

}  // namespace zinf::hf
