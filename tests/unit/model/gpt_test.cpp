// model: flat-buffer layout, GPT-2 init, causality, gradients in the flat
// buffer, and activation checkpointing that leaves gradients unchanged.
#include <algorithm>
#include <cmath>

#include "model/checkpointed_block.h"
#include "model/gpt.h"
#include "model/layout.h"
#include "unit/model/torch_doctest.h"

using namespace zinf;
using namespace zinf::model;

namespace {

ModelSpec small_spec() { return ModelSpec{"custom", 64, 16, 32, 2, 4}; }

torch::Tensor random_tokens(std::int64_t b, std::int64_t t, std::int64_t vocab, std::uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return torch::randint(vocab, {b, t}, gen, torch::kInt64);
}

}  // namespace

TEST_CASE("the layout covers every parameter once, block after block") {
  for (const auto& spec : {small_spec(), *find_model("tiny"), *find_model("gpt2-small")}) {
    const auto layout = model_layout(spec);
    REQUIRE(layout.size() == std::size_t(spec.layers + 2));
    CHECK(layout.front().name == "embedding");
    CHECK(layout.back().name == "head");
    std::int64_t cursor = 0;
    for (const auto& b : layout) {
      CHECK(b.offset == cursor);
      for (const auto& p : b.params) {
        CHECK(p.offset == cursor);
        cursor += p.numel;
      }
      CHECK(cursor == b.offset + b.numel);
    }
    CHECK(cursor == spec.parameter_count());
    CHECK(layout[1].numel == spec.block_parameter_count());
  }
  CHECK(model_layout(*find_model("gpt2-small")).back().offset + 1536 == find_model("gpt2-small")->parameter_count());
}

TEST_CASE("a hidden size not divisible by the heads is refused") {
  CHECK_THROWS_WITH(model_layout(ModelSpec{"custom", 64, 16, 30, 2, 4}),
                    doctest::Contains("--hidden-size 30 is not divisible by --heads 4"));
}

TEST_CASE("the tiny model has about a million parameters") {
  const auto tiny = *find_model("tiny");
  CHECK(tiny.parameter_count() > 500'000);
  CHECK(tiny.parameter_count() < 2'000'000);
}

TEST_CASE("GPT-2 initialisation is seeded and scaled") {
  const ModelSpec spec = small_spec();
  const torch::Tensor a = Gpt::initial_weights(spec, 1), b = Gpt::initial_weights(spec, 1), c = Gpt::initial_weights(spec, 2);
  CHECK(torch::equal(a, b));
  CHECK_FALSE(torch::equal(a, c));
  Gpt m({spec});
  m.load_flat(a);
  const auto& blk = m.block_params(1);
  CHECK(blk[kLn1Weight].eq(1).all().item<bool>());
  CHECK(blk[kQkvBias].eq(0).all().item<bool>());
  const double std_fc = blk[kFcWeight].std().item<double>();
  const double std_proj = blk[kMlpProjWeight].std().item<double>();
  CHECK(std_fc == doctest::Approx(0.02).epsilon(0.1));
  CHECK(std_proj == doctest::Approx(0.02 / std::sqrt(4.0)).epsilon(0.1));
}

TEST_CASE("the initial loss is close to ln(vocab)") {
  const ModelSpec spec = small_spec();
  Gpt m({spec});
  m.load_flat(Gpt::initial_weights(spec, 3));
  const auto idx = random_tokens(4, 16, 64, 5), tgt = random_tokens(4, 16, 64, 6);
  CHECK(m.loss(idx, tgt).item<double>() == doctest::Approx(std::log(64.0)).epsilon(0.05));
}

TEST_CASE("attention is causal: later tokens do not change earlier logits") {
  const ModelSpec spec = small_spec();
  Gpt m({spec});
  m.load_flat(Gpt::initial_weights(spec, 3));
  torch::NoGradGuard no_grad;
  torch::Tensor idx = random_tokens(1, 16, 64, 7);
  const torch::Tensor a = m.forward(idx);
  idx[0][10] = (idx[0][10].item<std::int64_t>() + 1) % 64;
  const torch::Tensor b = m.forward(idx);
  CHECK(torch::allclose(a.narrow(1, 0, 10), b.narrow(1, 0, 10)));
  CHECK_FALSE(torch::allclose(a.narrow(1, 10, 1), b.narrow(1, 10, 1)));
}

TEST_CASE("backward writes every parameter's gradient into the flat gradient buffer") {
  const ModelSpec spec = small_spec();
  Gpt m({spec});
  m.load_flat(Gpt::initial_weights(spec, 3));
  m.loss(random_tokens(2, 16, 64, 8), random_tokens(2, 16, 64, 9)).backward();
  for (std::size_t b = 0; b < m.layout().size(); ++b)
    for (std::size_t i = 0; i < m.layout()[b].params.size(); ++i) {
      const auto& info = m.layout()[b].params[i];
      const torch::Tensor g = m.grads().narrow(0, info.offset, info.numel);
      CAPTURE(info.name);
      CHECK(g.abs().sum().item<double>() > 0);
      CHECK(m.block_params(b)[i].grad().data_ptr() == g.data_ptr());
    }
  // A second backward accumulates, like torch's .grad.
  const torch::Tensor first = m.grads().clone();
  m.loss(random_tokens(2, 16, 64, 8), random_tokens(2, 16, 64, 9)).backward();
  CHECK(torch::allclose(m.grads(), first * 2, 1e-5, 1e-7));
}

TEST_CASE("activation checkpointing gives the same loss and gradients") {
  const ModelSpec spec = small_spec();
  const torch::Tensor w = Gpt::initial_weights(spec, 11);
  const auto idx = random_tokens(3, 16, 64, 12), tgt = random_tokens(3, 16, 64, 13);
  Gpt plain({spec, torch::kFloat32, torch::kCPU, false});
  Gpt ckpt({spec, torch::kFloat32, torch::kCPU, true});
  plain.load_flat(w);
  ckpt.load_flat(w);
  const torch::Tensor la = plain.loss(idx, tgt), lb = ckpt.loss(idx, tgt);
  CHECK(la.item<double>() == lb.item<double>());
  la.backward();
  lb.backward();
  CHECK(torch::allclose(plain.grads(), ckpt.grads(), 1e-6, 1e-8));
  CHECK(plain.grads().abs().sum().item<double>() > 0);
}

TEST_CASE("checkpointed() calls the engine's hooks around forward and recompute") {
  int acquired = 0, released = 0;
  std::vector<torch::Tensor> seen;
  torch::Tensor w = torch::randn({4, 4}).requires_grad_(true);
  torch::Tensor x = torch::randn({2, 4}).requires_grad_(true);
  BlockHooks hooks{[&] { ++acquired; }, [&] { ++released; },
                   [&](const std::vector<torch::Tensor>& g) { seen = g; }};
  torch::Tensor y = checkpointed([](const torch::Tensor& in, const std::vector<torch::Tensor>& p) {
    return torch::tanh(at::matmul(in, p[0]));
  }, x, {w}, hooks);
  CHECK(acquired == 1);
  CHECK(released == 1);
  CHECK_FALSE(y.grad_fn() == nullptr);
  y.sum().backward();
  CHECK(acquired == 2);
  CHECK(released == 2);
  REQUIRE(seen.size() == 1);
  torch::Tensor w2 = w.detach().clone().requires_grad_(true), x2 = x.detach().clone().requires_grad_(true);
  torch::tanh(at::matmul(x2, w2)).sum().backward();
  CHECK(torch::allclose(w.grad(), w2.grad()));
  CHECK(torch::allclose(x.grad(), x2.grad()));
  CHECK(torch::allclose(seen[0], w2.grad()));
}

TEST_CASE("a Llama-family decoder gives the same loss and gradients with and without activation checkpointing") {
  zinf::ModelSpec spec{"custom", 64, 16, 32, 2, 4};
  spec.model_type = "qwen2";
  spec.kv_heads = 2;
  spec.intermediate_size = 40;
  spec.attention_bias = true;
  spec.tied_embeddings = false;
  const torch::Tensor w = zinf::model::Gpt::initial_weights(spec, 3);
  const torch::Tensor idx = torch::randint(64, {2, 16}, torch::kInt64);
  const torch::Tensor tgt = torch::randint(64, {2, 16}, torch::kInt64);
  std::vector<torch::Tensor> grads;
  std::vector<double> losses;
  for (bool ckpt : {false, true}) {
    zinf::model::Gpt g({spec, torch::kFloat32, torch::kCPU, ckpt});
    g.load_flat(w);
    torch::Tensor l = g.loss(idx, tgt);
    l.backward();
    losses.push_back(l.item<double>());
    grads.push_back(g.grads().clone());
  }
  CHECK(losses[0] == doctest::Approx(losses[1]).epsilon(1e-6));
  CHECK(grads[0].abs().sum().item<double>() > 0);
  CHECK(torch::allclose(grads[0], grads[1], 1e-5, 1e-6));
}

TEST_CASE("weight decay leaves norms, biases and embeddings alone: only block matrices and an untied lm_head decay") {
  ModelSpec llama{"custom", 97, 8, 32, 2, 4};
  llama.model_type = "llama";
  llama.kv_heads = 2;
  llama.intermediate_size = 48;
  for (const bool tied : {true, false}) {
    llama.tied_embeddings = tied;
    for (const ModelSpec& spec : {small_spec(), llama}) {
      CAPTURE(spec.model_type);
      CAPTURE(tied);
      const auto layout = model_layout(spec);
      const std::vector<FlatRange> exempt = no_decay_ranges(layout);
      // sorted, disjoint, merged
      for (std::size_t i = 1; i < exempt.size(); ++i) CHECK(exempt[i - 1].end() < exempt[i].begin);
      const auto exempt_of = [&](std::int64_t at) {
        for (const auto& r : exempt)
          if (at >= r.begin && at < r.end()) return true;
        return false;
      };
      std::int64_t decayed = 0;
      for (const auto& block : layout)
        for (const auto& p : block.params) {
          CAPTURE(p.name);
          const bool matrix = p.shape.size() == 2 && block.name != "embedding";
          const bool named_exempt = p.name.find("norm") != std::string::npos || p.name.find("ln_") != std::string::npos ||
                                    p.name.find("bias") != std::string::npos || p.name.find("wte") != std::string::npos ||
                                    p.name.find("wpe") != std::string::npos ||
                                    p.name.find("embed_tokens") != std::string::npos;
          CHECK(matrix == !named_exempt);
          CHECK(exempt_of(p.offset) == !matrix);
          CHECK(exempt_of(p.offset + p.numel - 1) == !matrix);
          if (matrix) decayed += p.numel;
        }
      CHECK(decayed + total_count(exempt) == spec.parameter_count());
      const bool has_lm_head = std::any_of(layout.back().params.begin(), layout.back().params.end(),
                                           [](const ParamInfo& p) { return p.name == "lm_head.weight"; });
      CHECK(has_lm_head == (spec.model_type == "llama" && !tied));
    }
  }
}
