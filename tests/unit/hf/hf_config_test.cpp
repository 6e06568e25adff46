// Tests for zinf::hf::parse_hf_config: the committed fixtures' config.json
// files (transformers 5.17) become the ModelSpec their weights need, the
// older rope_theta + rope_scaling form reads the same, and each unsupported
// field is refused by name.
#include "hf/hf_config.h"

#include <doctest/doctest.h>

#include <string>

#include "core/error.h"

using namespace zinf;

namespace {

const std::string kModels = std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/models/";

std::string error_of_config(const std::string& text) {
  try {
    hf::parse_hf_config(text, "x/config.json");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    return std::string(e.what()) + " | " + e.hint();
  }
  return "no error";
}

const char* kLlama = R"({"model_type": "llama", "vocab_size": 96, "hidden_size": 32, "intermediate_size": 48,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
  "rms_norm_eps": 1e-6, "rope_theta": 500000.0,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 16}, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2)";

}  // namespace

TEST_CASE("hf config: the gpt2 fixture is GPT-2 with tied head and n_inner null = 4h") {
  const ModelSpec s = hf::read_hf_config(kModels + "gpt2");
  CHECK(s.model_type == "gpt2");
  CHECK(s.vocab_size == 96);
  CHECK(s.hidden_size == 32);
  CHECK(s.layers == 2);
  CHECK(s.heads == 4);
  CHECK(s.max_positions == 32);
  CHECK(s.seq_len == 32);
  CHECK(s.ffn_size() == 128);
  CHECK(s.norm_eps == doctest::Approx(1e-5));
  CHECK(s.tied_embeddings);
  CHECK(s.bos_token_id == 95);
}

TEST_CASE("hf config: llama's rope_parameters (transformers 5) and the older rope_scaling read the same") {
  const ModelSpec s = hf::read_hf_config(kModels + "llama");
  CHECK(s.model_type == "llama");
  CHECK(s.kv_heads == 2);
  CHECK(s.head_size() == 8);
  CHECK(s.intermediate_size == 48);
  CHECK(s.max_positions == 64);
  CHECK_FALSE(s.tied_embeddings);
  CHECK(s.rope_theta == 500000.0);
  CHECK(s.rope_scaling.type == "llama3");
  CHECK(s.rope_scaling.factor == 8.0);
  CHECK(s.rope_scaling.original_max_position == 16);
  CHECK(s.eos_token_id == 2);
  const ModelSpec old = hf::parse_hf_config(std::string(kLlama) + "}", "old/config.json");
  CHECK(old.rope_theta == s.rope_theta);
  CHECK(old.rope_scaling.type == s.rope_scaling.type);
  CHECK(old.rope_scaling.factor == s.rope_scaling.factor);
  CHECK(old.rope_scaling.original_max_position == s.rope_scaling.original_max_position);
  CHECK(old.kv_heads == s.kv_heads);
  CHECK(old.norm_eps == s.norm_eps);
  CHECK(hf::read_hf_config(kModels + "llama-linear-bf16").rope_scaling.type == "linear");
}

TEST_CASE("hf config: qwen2 has q/k/v biases, mistral reads") {
  CHECK(hf::read_hf_config(kModels + "qwen2").attention_bias);
  CHECK(hf::read_hf_config(kModels + "qwen2").model_type == "qwen2");
  CHECK(hf::read_hf_config(kModels + "mistral").model_type == "mistral");
}

TEST_CASE("hf config: unsupported fields are refused by name with what is supported") {
  CHECK(error_of_config(R"({"model_type": "mixtral"})") ==
        "x/config.json: model_type 'mixtral' is not supported | supported: gpt2, llama, mistral, qwen2");
  CHECK(error_of_config(std::string(kLlama) + R"(, "num_local_experts": 8})").find(
            "num_local_experts (mixture of experts) is not supported") != std::string::npos);
  CHECK(error_of_config(std::string(kLlama) + R"(, "mlp_bias": true})").find("mlp_bias true is not supported") !=
        std::string::npos);
  CHECK(error_of_config(std::string(kLlama) + R"(, "hidden_act": "gelu"})").find("hidden_act 'gelu' is not supported | supported: silu") !=
        std::string::npos);
  std::string mistral = kLlama;
  mistral.replace(mistral.find("\"llama\""), 7, "\"mistral\"");
  // A sliding window is kept for the run's seq_len to be held against (config).
  CHECK(zinf::hf::parse_hf_config(mistral + R"(, "sliding_window": 16})", "x/config.json").sliding_window == 16);
  CHECK(error_of_config(R"({"model_type": "gpt2", "vocab_size": 96, "n_embd": 32, "n_layer": 2, "n_head": 4,
      "n_positions": 32, "activation_function": "relu"})")
            .find("activation_function 'relu' is not supported | supported: gelu_new, gelu_pytorch_tanh") != std::string::npos);
  CHECK(error_of_config(R"({"model_type": "gpt2", "vocab_size": 96, "n_layer": 2, "n_head": 4, "n_positions": 32})")
            .find("n_embd is missing") != std::string::npos);
  CHECK(error_of_config("{").find("x/config.json is not valid JSON") != std::string::npos);
}
