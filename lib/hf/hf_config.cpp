// zinf::hf — HF config.json -> ModelSpec (gpt2, llama, mistral, qwen2).
#include "hf/hf_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace zinf::hf {
namespace {

using nlohmann::json;

struct Fields {
  const json& j;
  const std::string& file;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }

  Error bad(const std::string& key, const std::string& why, const std::string& allowed) const {
    return UsageError(file + ": " + key + " " + why, allowed);
  }

  std::int64_t integer(const char* key) const {
    if (!has(key)) throw bad(key, "is missing", "a Hugging Face config.json names it for this model_type");
    if (!j[key].is_number_integer() || j[key].get<std::int64_t>() < 0)
      throw bad(key, "is " + j[key].dump() + ", not a non-negative integer", "a whole number");
    return j[key].get<std::int64_t>();
  }
  std::int64_t integer_or(const char* key, std::int64_t fallback) const { return has(key) ? integer(key) : fallback; }
  double number_or(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_number()) throw bad(key, "is " + j[key].dump() + ", not a number", "a number");
    return j[key].get<double>();
  }
  bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_boolean()) throw bad(key, "is " + j[key].dump() + ", not true or false", "true or false");
    return j[key].get<bool>();
  }
  std::string string_or(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_string()) throw bad(key, "is " + j[key].dump() + ", not a string", "a string");
    return j[key].get<std::string>();
  }
  // bos/eos may be one id or a list (the first is used); absent: -1.
  std::int64_t token_id(const char* key) const {
    if (!has(key)) return -1;
    const json& v = j[key].is_array() && !j[key].empty() ? j[key][0] : j[key];
    if (!v.is_number_integer()) throw bad(key, "is " + j[key].dump() + ", not a token id", "an integer or a list of integers");
    return v.get<std::int64_t>();
  }
};

RopeScaling rope_scaling_from(const json& r, const std::string& file, const std::string& key) {
  RopeScaling s;
  std::string type = r.contains("rope_type") ? r["rope_type"].get<std::string>()
                                             : r.value("type", std::string("default"));
  if (type == "default") return s;
  if (type != "linear" && type != "llama3")
    throw UsageError(file + ": " + key + " type '" + type + "' is not supported", "supported: default, linear, llama3");
  s.type = type;
  s.factor = r.value("factor", 1.0);
  if (type == "llama3") {
    s.low_freq_factor = r.value("low_freq_factor", 1.0);
    s.high_freq_factor = r.value("high_freq_factor", 4.0);
    s.original_max_position = r.value("original_max_position_embeddings", std::int64_t(8192));
  }
  return s;
}

ModelSpec gpt2_spec(const Fields& f) {
  ModelSpec s{};
  s.name = "custom";
  s.vocab_size = f.integer("vocab_size");
  s.hidden_size = f.integer("n_embd");
  s.layers = f.integer("n_layer");
  s.heads = f.integer("n_head");
  s.model_type = "gpt2";
  s.max_positions = f.integer("n_positions");
  s.intermediate_size = f.integer_or("n_inner", 4 * s.hidden_size);
  s.norm_eps = f.number_or("layer_norm_epsilon", 1e-5);
  const std::string act = f.string_or("activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    throw f.bad("activation_function", "'" + act + "' is not supported", "supported: gelu_new, gelu_pytorch_tanh");
  if (!f.boolean_or("tie_word_embeddings", true))
    throw f.bad("tie_word_embeddings", "false is not supported for gpt2", "GPT-2's head is tied to wte");
  if (f.boolean_or("scale_attn_by_inverse_layer_idx", false) || f.boolean_or("reorder_and_upcast_attn", false))
    throw f.bad("scale_attn_by_inverse_layer_idx/reorder_and_upcast_attn", "true is not supported", "false");
  s.tied_embeddings = true;
  return s;
}

ModelSpec llama_spec(const Fields& f, const std::string& type) {
  ModelSpec s{};
  s.name = "custom";
  s.vocab_size = f.integer("vocab_size");
  s.hidden_size = f.integer("hidden_size");
  s.layers = f.integer("num_hidden_layers");
  s.heads = f.integer("num_attention_heads");
  s.model_type = type;
  s.kv_heads = f.integer_or("num_key_value_heads", s.heads);
  s.intermediate_size = f.integer("intermediate_size");
  s.head_dim = f.integer_or("head_dim", 0);
  s.max_positions = f.integer("max_position_embeddings");
  s.norm_eps = f.number_or("rms_norm_eps", 1e-6);
  s.tied_embeddings = f.boolean_or("tie_word_embeddings", false);
  s.attention_bias = f.boolean_or("attention_bias", type == "qwen2");
  if (f.boolean_or("mlp_bias", false)) throw f.bad("mlp_bias", "true is not supported", "false (no MLP biases)");
  const std::string act = f.string_or("hidden_act", "silu");
  if (act != "silu") throw f.bad("hidden_act", "'" + act + "' is not supported", "supported: silu");
  if (f.has("num_local_experts") || f.has("num_experts"))
    throw f.bad(f.has("num_local_experts") ? "num_local_experts" : "num_experts",
                "(mixture of experts) is not supported", "a dense model");
  if (type == "qwen2" && f.boolean_or("use_sliding_window", false))
    throw f.bad("use_sliding_window", "true is not supported", "false");
  // A window no shorter than every sequence is full attention: the caller
  // holds the run's seq_len against it.
  if (type == "mistral" && f.has("sliding_window")) s.sliding_window = f.integer("sliding_window");
  if (f.has("rope_parameters")) {
    const json& r = f.j["rope_parameters"];
    if (!r.is_object()) throw f.bad("rope_parameters", "is not an object", "{rope_theta, rope_type, ...}");
    s.rope_theta = r.value("rope_theta", 10000.0);
    s.rope_scaling = rope_scaling_from(r, f.file, "rope_parameters");
  } else {
    s.rope_theta = f.number_or("rope_theta", 10000.0);
    if (f.has("rope_scaling")) {
      if (!f.j["rope_scaling"].is_object()) throw f.bad("rope_scaling", "is not an object", "{type, factor, ...}");
      s.rope_scaling = rope_scaling_from(f.j["rope_scaling"], f.file, "rope_scaling");
    }
  }
  return s;
}

}  // namespace

ModelSpec parse_hf_config(const std::string& text, const std::string& file) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw UsageError(file + " is not valid JSON: " + e.what(), "a Hugging Face model directory's config.json");
  }
  if (!j.is_object()) throw UsageError(file + " is not a JSON object", "a Hugging Face config.json");
  const Fields f{j, file};
  const std::string type = f.string_or("model_type", "");
  ModelSpec s = [&] {
    if (type == "gpt2") return gpt2_spec(f);
    if (type == "llama" || type == "mistral" || type == "qwen2") return llama_spec(f, type);
    throw UsageError(file + ": model_type '" + type + "' is not supported", "supported: gpt2, llama, mistral, qwen2");
  }();
  s.seq_len = s.max_positions;
  s.bos_token_id = f.token_id("bos_token_id");
  s.eos_token_id = f.token_id("eos_token_id");
  s.check_dimensions();
  return s;
}

ModelSpec read_hf_config(const std::string& dir) {
  const std::string file = dir + "/config.json";
  std::ifstream in(file);
  if (!in) throw UsageError("cannot read " + file, "--from-pretrained names a Hugging Face model directory with a config.json");
  std::stringstream text;
  text << in.rdbuf();
  return parse_hf_config(text.str(), file);
}

}  // namespace zinf::hf
