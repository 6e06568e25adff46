// zinf::hf — ModelSpec -> HF config.json and generation_config.json.
#include "hf/hf_config_writer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "hf/dtype.h"

namespace zinf::hf {
namespace {

using nlohmann::json;

// A token id, or null when the spec has none (-1).
json token(std::int64_t id) { return id >= 0 ? json(id) : json(nullptr); }

const char* torch_dtype(const std::string& dtype) {
  switch (dtype_of(dtype, "the exported model")) {
    case Dtype::kBF16: return "bfloat16";
    case Dtype::kF16: return "float16";
    case Dtype::kF32: break;
  }
  return "float32";
}

json gpt2_config(const ModelSpec& s) {
  return {{"architectures", {"GPT2LMHeadModel"}},
          {"model_type", "gpt2"},
          {"vocab_size", s.vocab_size},
          {"n_embd", s.hidden_size},
          {"n_layer", s.layers},
          {"n_head", s.heads},
          {"n_positions", s.position_count()},
          {"n_ctx", s.position_count()},
          {"n_inner", s.ffn_size() == 4 * s.hidden_size ? json(nullptr) : json(s.ffn_size())},
          {"layer_norm_epsilon", s.norm_eps},
          {"activation_function", "gelu_new"},
          {"tie_word_embeddings", true},
          {"scale_attn_weights", true},
          {"scale_attn_by_inverse_layer_idx", false},
          {"reorder_and_upcast_attn", false},
          {"attn_pdrop", 0.0},
          {"embd_pdrop", 0.0},
          {"resid_pdrop", 0.0},
          {"use_cache", true}};
}

json rope_scaling(const RopeScaling& r) {
  if (r.type == "linear") return {{"rope_type", "linear"}, {"factor", r.factor}};
  if (r.type == "llama3")
    return {{"rope_type", "llama3"},
            {"factor", r.factor},
            {"low_freq_factor", r.low_freq_factor},
            {"high_freq_factor", r.high_freq_factor},
            {"original_max_position_embeddings", r.original_max_position}};
  return nullptr;
}

json llama_config(const ModelSpec& s) {
  const char* arch = s.model_type == "mistral" ? "MistralForCausalLM"
                     : s.model_type == "qwen2" ? "Qwen2ForCausalLM"
                                               : "LlamaForCausalLM";
  json j = {{"architectures", {arch}},
            {"model_type", s.model_type},
            {"vocab_size", s.vocab_size},
            {"hidden_size", s.hidden_size},
            {"intermediate_size", s.ffn_size()},
            {"num_hidden_layers", s.layers},
            {"num_attention_heads", s.heads},
            {"num_key_value_heads", s.kv_head_count()},
            {"head_dim", s.head_size()},
            {"max_position_embeddings", s.position_count()},
            {"rms_norm_eps", s.norm_eps},
            {"rope_theta", s.rope_theta},
            {"rope_scaling", rope_scaling(s.rope_scaling)},
            {"tie_word_embeddings", s.tied_embeddings},
            {"attention_bias", s.attention_bias},
            {"hidden_act", "silu"},
            {"attention_dropout", 0.0},
            {"initializer_range", 0.02},
            {"use_cache", true}};
  if (s.model_type == "llama") {
    j["mlp_bias"] = false;
    j["pretraining_tp"] = 1;
  }
  if (s.model_type == "mistral") j["sliding_window"] = nullptr;
  if (s.model_type == "qwen2") {
    j["use_sliding_window"] = false;
    j["sliding_window"] = nullptr;
  }
  return j;
}

}  // namespace

std::string hf_config_json(const ModelSpec& spec, const std::string& dtype) {
  json j = [&] {
    if (spec.model_type == "gpt2") return gpt2_config(spec);
    if (spec.model_type == "llama" || spec.model_type == "mistral" || spec.model_type == "qwen2")
      return llama_config(spec);
    throw UsageError("model_type '" + spec.model_type + "' has no Hugging Face config.json writer",
                     "supported: gpt2, llama, mistral, qwen2");
  }();
  j["bos_token_id"] = token(spec.bos_token_id);
  j["eos_token_id"] = token(spec.eos_token_id);
  j["torch_dtype"] = torch_dtype(dtype);  // transformers 4
  j["dtype"] = torch_dtype(dtype);        // transformers 5
  return j.dump(2) + "\n";
}

std::string generation_config_json(const ModelSpec& spec) {
  json j = {{"_from_model_config", true}};
  if (spec.bos_token_id >= 0) j["bos_token_id"] = spec.bos_token_id;
  if (spec.eos_token_id >= 0) j["eos_token_id"] = spec.eos_token_id;
  return j.dump(2) + "\n";
}

}  // namespace zinf::hf
