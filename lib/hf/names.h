// zinf::hf — Hugging Face tensor names and orientation, per architecture.
// Owns: the rules that map a tensor name in an HF safetensors file onto
// zinf's parameter names (which are the HF state_dict names): GPT-2 files may
// name tensors with or without the "transformer." prefix, hold non-parameter
// buffers (attn.bias, attn.masked_bias) and store Conv1D weights [in, out]
// where zinf stores [out, in]. Llama-family names are identical to zinf's.
#pragma once

#include <string>

namespace zinf::hf {

// The zinf parameter name for GPT-2 file tensor `name` ("h.0.ln_1.weight" ->
// "transformer.h.0.ln_1.weight"; "lm_head.weight" unchanged).
std::string gpt2_param_name(const std::string& name);
// True for GPT-2's attention mask buffers, which are not parameters.
bool gpt2_is_buffer(const std::string& name);
// True when the GPT-2 parameter (zinf name) is a Conv1D weight that HF stores
// transposed: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj .weight.
bool gpt2_is_conv1d_weight(const std::string& param_name);

}  // namespace zinf::hf
