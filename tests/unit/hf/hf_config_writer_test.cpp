// Tests for zinf::hf::hf_config_json / generation_config_json: every
// committed fixture's config.json (transformers 5.17) read into a ModelSpec,
// written back and read again gives the same spec field by field, and the
// written files carry the names transformers needs for each architecture.
#include "hf/hf_config_writer.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "hf/hf_config.h"

using namespace zinf;
using nlohmann::json;

namespace {

const std::string kModels = std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/models/";

void check_same(const ModelSpec& a, const ModelSpec& b) {
  CHECK(a.name == b.name);
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.seq_len == b.seq_len);
  CHECK(a.hidden_size == b.hidden_size);
  CHECK(a.layers == b.layers);
  CHECK(a.heads == b.heads);
  CHECK(a.model_type == b.model_type);
  CHECK(a.kv_head_count() == b.kv_head_count());
  CHECK(a.ffn_size() == b.ffn_size());
  CHECK(a.head_size() == b.head_size());
  CHECK(a.max_positions == b.max_positions);
  CHECK(a.norm_eps == b.norm_eps);
  CHECK(a.rope_theta == b.rope_theta);
  CHECK(a.rope_scaling.type == b.rope_scaling.type);
  CHECK(a.rope_scaling.factor == b.rope_scaling.factor);
  CHECK(a.rope_scaling.low_freq_factor == b.rope_scaling.low_freq_factor);
  CHECK(a.rope_scaling.high_freq_factor == b.rope_scaling.high_freq_factor);
  CHECK(a.rope_scaling.original_max_position == b.rope_scaling.original_max_position);
  CHECK(a.tied_embeddings == b.tied_embeddings);
  CHECK(a.attention_bias == b.attention_bias);
  CHECK(a.bos_token_id == b.bos_token_id);
  CHECK(a.eos_token_id == b.eos_token_id);
  CHECK(a.parameter_count() == b.parameter_count());
}

}  // namespace

TEST_CASE("hf config writer: every fixture's config reads back as the same spec") {
  for (const char* dir : {"gpt2", "gpt2-fp16", "gpt2-sharded", "llama", "llama-linear-bf16", "llama-sharded",
                          "mistral", "qwen2", "qwen2-sharded"}) {
    CAPTURE(dir);
    const ModelSpec s = hf::read_hf_config(kModels + dir);
    for (const char* dtype : {"F32", "BF16", "F16"}) {
      CAPTURE(dtype);
      check_same(hf::parse_hf_config(hf::hf_config_json(s, dtype), "written/config.json"), s);
    }
  }
}

TEST_CASE("hf config writer: gpt2 names GPT2LMHeadModel with n_positions = n_ctx, gelu_new and a tied head") {
  const ModelSpec s = hf::read_hf_config(kModels + "gpt2");
  const json j = json::parse(hf::hf_config_json(s, "F32"));
  CHECK(j["architectures"] == json::array({"GPT2LMHeadModel"}));
  CHECK(j["model_type"] == "gpt2");
  CHECK(j["n_embd"] == 32);
  CHECK(j["n_layer"] == 2);
  CHECK(j["n_head"] == 4);
  CHECK(j["n_positions"] == 32);
  CHECK(j["n_ctx"] == 32);
  CHECK(j["n_inner"].is_null());
  CHECK(j["vocab_size"] == 96);
  CHECK(j["layer_norm_epsilon"] == 1e-5);
  CHECK(j["activation_function"] == "gelu_new");
  CHECK(j["tie_word_embeddings"] == true);
  CHECK(j["bos_token_id"] == 95);
  CHECK(j["eos_token_id"] == 95);
  CHECK(j["torch_dtype"] == "float32");
  CHECK(j["dtype"] == "float32");
}

TEST_CASE("hf config writer: llama writes GQA, head_dim, llama3 rope_scaling and its dtype") {
  const ModelSpec s = hf::read_hf_config(kModels + "llama");
  const json j = json::parse(hf::hf_config_json(s, "BF16"));
  CHECK(j["architectures"] == json::array({"LlamaForCausalLM"}));
  CHECK(j["hidden_size"] == 32);
  CHECK(j["intermediate_size"] == 48);
  CHECK(j["num_attention_heads"] == 4);
  CHECK(j["num_key_value_heads"] == 2);
  CHECK(j["num_hidden_layers"] == 2);
  CHECK(j["head_dim"] == 8);
  CHECK(j["max_position_embeddings"] == 64);
  CHECK(j["rms_norm_eps"] == 1e-6);
  CHECK(j["rope_theta"] == 500000.0);
  CHECK(j["rope_scaling"] == json({{"rope_type", "llama3"},
                                   {"factor", 8.0},
                                   {"low_freq_factor", 1.0},
                                   {"high_freq_factor", 4.0},
                                   {"original_max_position_embeddings", 16}}));
  CHECK(j["tie_word_embeddings"] == false);
  CHECK(j["attention_bias"] == false);
  CHECK(j["mlp_bias"] == false);
  CHECK(j["hidden_act"] == "silu");
  CHECK(j["bos_token_id"] == 1);
  CHECK(j["eos_token_id"] == 2);
  CHECK(j["torch_dtype"] == "bfloat16");

  const json linear = json::parse(hf::hf_config_json(hf::read_hf_config(kModels + "llama-linear-bf16"), "F16"));
  CHECK(linear["rope_scaling"] == json({{"rope_type", "linear"}, {"factor", 2.0}}));
  CHECK(linear["torch_dtype"] == "float16");
}

TEST_CASE("hf config writer: mistral has no sliding window, qwen2 has use_sliding_window false and q/k/v biases") {
  const json m = json::parse(hf::hf_config_json(hf::read_hf_config(kModels + "mistral"), "F32"));
  CHECK(m["architectures"] == json::array({"MistralForCausalLM"}));
  CHECK(m.contains("sliding_window"));
  CHECK(m["sliding_window"].is_null());
  CHECK(m["rope_scaling"].is_null());
  CHECK(m["num_key_value_heads"] == 1);
  const json q = json::parse(hf::hf_config_json(hf::read_hf_config(kModels + "qwen2"), "F32"));
  CHECK(q["architectures"] == json::array({"Qwen2ForCausalLM"}));
  CHECK(q["use_sliding_window"] == false);
  CHECK(q["attention_bias"] == true);
  CHECK(q["tie_word_embeddings"] == true);
  CHECK(q["bos_token_id"].is_null());
  CHECK(q["rope_theta"] == 1000000.0);
}

TEST_CASE("hf generation config: bos/eos where the spec has them") {
  const json g = json::parse(hf::generation_config_json(hf::read_hf_config(kModels + "llama")));
  CHECK(g["bos_token_id"] == 1);
  CHECK(g["eos_token_id"] == 2);
  const json none = json::parse(hf::generation_config_json(hf::read_hf_config(kModels + "qwen2")));
  CHECK(!none.contains("bos_token_id"));
  CHECK(!none.contains("eos_token_id"));
}
