// Tests: the GPT-2 and Llama-family decoders (model::Gpt through
// model::architecture_of) against transformers 5.17's logits and loss on the
// committed tiny HF models (tests/data/hf/models, made by
// tools/fixtures/make_hf_fixtures.py in fp32 with eager attention). Weights
// are read by the importer (train::pretrained_weights), from every fixture
// directory (single file, sharded, fp16, bf16) and through the ZeRO engine.
#include <fstream>
#include <regex>
#include <sstream>

#include "model/gpt.h"
#include "hf/hf_config.h"
#include "hf/safetensors.h"
#include "train/weight_source.h"
#include "train/zero_gpt.h"
#include "unit/model/torch_doctest.h"

namespace {

using zinf::ModelSpec;

const std::string kModels = std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/models/";

torch::Tensor read_tensor(const zinf::hf::SafetensorsReader& r, const std::string& name) {
  const auto& e = r.entry(name);
  torch::Dtype dt = e.dtype == "F32" ? torch::kFloat32 : e.dtype == "BF16" ? torch::kBFloat16
                    : e.dtype == "F16" ? torch::kFloat16 : torch::kInt64;
  REQUIRE((e.dtype == "F32" || e.dtype == "BF16" || e.dtype == "F16" || e.dtype == "I64"));
  torch::Tensor t = torch::empty(e.shape, dt);
  r.read(name, t.data_ptr(), std::size_t(t.numel() * t.element_size()));
  return t;
}

// The fixture's weights in model_layout(spec) order, fp32, through the
// importer (train::pretrained_weights -> hf::PretrainedWeights).
torch::Tensor load_flat(const ModelSpec& spec, const std::string& dir) {
  const auto weights = zinf::train::pretrained_weights(spec, dir);
  const auto layout = zinf::model::model_layout(spec);
  torch::Tensor flat = torch::empty({spec.parameter_count()}, torch::kFloat32);
  for (std::size_t b = 0; b < layout.size(); ++b)
    weights->read(b, 0, layout[b].numel, flat.data_ptr<float>() + layout[b].offset);
  return flat;
}

double expected_loss(const std::string& dir) {
  std::ifstream in(dir + "/expected.json");
  std::stringstream ss;
  ss << in.rdbuf();
  std::smatch m;
  const std::string text = ss.str();
  REQUIRE(std::regex_search(text, m, std::regex("\"loss\"\\s*:\\s*([-0-9.eE+]+)")));
  return std::stod(m[1]);
}

// max |got - want| / max |want| of the logits, and the causal-LM loss (HF's:
// labels = input_ids, shifted inside the model) checked against the fixture.
void check_logits(const torch::Tensor& got, const std::string& dir, std::int64_t vocab) {
  zinf::hf::SafetensorsReader expected(dir + "/expected.safetensors");
  const torch::Tensor ids = read_tensor(expected, "input_ids");
  const torch::Tensor want = read_tensor(expected, "logits");
  REQUIRE(got.sizes() == want.sizes());
  const double rel = ((got - want).abs().max() / want.abs().max()).item<double>();
  INFO(dir << ": max |logits - HF| / max |HF| = " << rel);
  CHECK(rel < 1e-4);
  const std::int64_t T = ids.size(1);
  const torch::Tensor loss = at::cross_entropy_loss(got.narrow(1, 0, T - 1).reshape({-1, vocab}),
                                                    ids.narrow(1, 1, T - 1).reshape({-1}));
  CHECK(loss.item<double>() == doctest::Approx(expected_loss(dir)).epsilon(1e-5));
}

torch::Tensor fixture_ids(const std::string& dir) {
  zinf::hf::SafetensorsReader expected(dir + "/expected.safetensors");
  return read_tensor(expected, "input_ids");
}

void check_against_hf(const ModelSpec& spec, const std::string& name) {
  const std::string dir = kModels + name;
  zinf::model::GptOptions o;
  o.spec = spec;
  zinf::model::Gpt model(o);
  model.load_flat(load_flat(spec, dir));
  torch::NoGradGuard no_grad;
  check_logits(model.forward(fixture_ids(dir)), dir, spec.vocab_size);
}

ModelSpec llama_like(std::string type) {
  ModelSpec s{"custom", 96, 16, 32, 2, 4};
  s.model_type = std::move(type);
  s.max_positions = 64;
  return s;
}

}  // namespace

TEST_CASE("the GPT-2 decoder equals transformers' GPT2LMHeadModel on the tiny fixture") {
  ModelSpec s{"custom", 96, 16, 32, 2, 4};
  s.max_positions = 32;
  check_against_hf(s, "gpt2");
}

TEST_CASE("the Llama decoder (GQA, untied, llama3 rope) equals transformers' LlamaForCausalLM") {
  ModelSpec s = llama_like("llama");
  s.kv_heads = 2;
  s.intermediate_size = 48;
  s.head_dim = 8;
  s.norm_eps = 1e-6;
  s.rope_theta = 500000.0;
  s.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 16};
  s.tied_embeddings = false;
  check_against_hf(s, "llama");
}

TEST_CASE("the Llama decoder (linear rope, tied, bf16 weights) equals transformers' on the same weights") {
  ModelSpec s = llama_like("llama");
  s.intermediate_size = 64;
  s.head_dim = 8;
  s.rope_scaling.type = "linear";
  s.rope_scaling.factor = 2.0;
  check_against_hf(s, "llama-linear-bf16");
}

TEST_CASE("the qwen2 decoder (q/k/v biases, GQA, tied) equals transformers' Qwen2ForCausalLM") {
  ModelSpec s = llama_like("qwen2");
  s.kv_heads = 2;
  s.intermediate_size = 64;
  s.norm_eps = 1e-6;
  s.rope_theta = 1e6;
  s.attention_bias = true;
  check_against_hf(s, "qwen2");
}

TEST_CASE("the mistral decoder (one kv head, untied) equals transformers' MistralForCausalLM") {
  ModelSpec s = llama_like("mistral");
  s.kv_heads = 1;
  s.intermediate_size = 56;
  s.head_dim = 8;
  s.rope_theta = 1e6;
  s.tied_embeddings = false;
  check_against_hf(s, "mistral");
}

TEST_CASE("every fixture directory (single, sharded, fp16, bf16) imports from its own config.json to HF's logits") {
  // The spec comes from the directory, as --from-pretrained makes it; the
  // fp16 fixture's expected logits are transformers' on the fp16 weights
  // cast to fp32, so the import must convert exactly.
  for (const char* name : {"gpt2", "gpt2-sharded", "gpt2-fp16", "llama", "llama-sharded", "llama-linear-bf16", "qwen2",
                           "qwen2-sharded", "mistral"}) {
    CAPTURE(name);
    const ModelSpec spec = zinf::hf::read_hf_config(kModels + name);
    check_against_hf(spec, name);
  }
}

TEST_CASE("the ZeRO engine (zero3 and infinity-cpu) reads pretrained weights to HF's logits") {
  for (const char* name : {"llama-sharded", "qwen2", "gpt2-sharded"}) {
    for (zinf::Tier params : {zinf::Tier::kDevice, zinf::Tier::kCpu}) {
      CAPTURE(name);
      CAPTURE(int(params));
      const std::string dir = kModels + name;
      const ModelSpec spec = zinf::hf::read_hf_config(dir);
      zinf::zero::OffloadEngineOptions o;
      o.param_home = params;
      o.optimizer_home = zinf::Tier::kCpu;
      o.partition_params = true;
      const auto weights = zinf::train::pretrained_weights(spec, dir);
      zinf::train::ZeroGpt gpt(spec, *weights, o);
      torch::NoGradGuard no_grad;
      check_logits(gpt.forward(fixture_ids(dir)), dir, spec.vocab_size);
    }
  }
}
