// zinf::hf — a ModelSpec as Hugging Face config.json / generation_config.json.
// Implements: hf_config_json(), the config.json transformers needs to build
// the model (GPT2LMHeadModel, LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM) with the field names transformers writes, and
// generation_config_json() (bos/eos). The inverse of parse_hf_config
// (hf_config.h) field by field: parse_hf_config(hf_config_json(s)) == s for
// every spec zinf builds, seq_len aside (it becomes the position count).
// Rope settings are written in the older top-level form (rope_theta +
// rope_scaling), which transformers 4 reads and 5 converts. No LibTorch here.
#pragma once

#include <string>

#include "core/model_spec.h"

namespace zinf::hf {

// `dtype`: "F32" | "BF16" | "F16" (the weights' dtype), written as
// torch_dtype/dtype "float32" | "bfloat16" | "float16". Returns the JSON text
// (2-space indented, keys sorted, ends with a newline). Throws UsageError for a
// model_type zinf does not build.
std::string hf_config_json(const ModelSpec& spec, const std::string& dtype);
// generation_config.json: bos_token_id / eos_token_id where the spec has them.
std::string generation_config_json(const ModelSpec& spec);

}  // namespace zinf::hf
