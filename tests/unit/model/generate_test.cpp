// model: the KV cache gives the uncached forward's logits at every position
// (GPT-2 and Llama with GQA), prefill and token-by-token alike, and
// generate() refuses bad prompts and options by name.
#include "model/generate.h"

#include "model/gpt.h"
#include "model/layout.h"
#include "support/test_util.h"
#include "unit/model/torch_doctest.h"

using namespace zinf;
using namespace zinf::model;

namespace {

void check_cache_equals_forward(const ModelSpec& spec) {
  GptOptions o;
  o.spec = spec;
  Gpt gpt(o);
  gpt.load_flat(Gpt::initial_weights(spec, 5));
  torch::NoGradGuard no_grad;
  at::Generator gen = at::detail::createCPUGenerator(11);
  const torch::Tensor ids = torch::randint(spec.vocab_size, {1, spec.seq_len}, gen, torch::kInt64);
  const torch::Tensor full = gpt.forward(ids)[0];  // [T, vocab]
  const BlockParams params = [&gpt](std::size_t b) -> const Params& { return gpt.block_params(b); };
  // Prefill of 5 tokens, then one at a time.
  std::vector<KvCache> caches;
  const std::int64_t prefill = 5;
  torch::Tensor got = forward_cached(spec, params, ids.narrow(1, 0, prefill), caches);
  CHECK(torch::allclose(got, full[prefill - 1], 1e-5, 1e-5));
  for (std::int64_t t = prefill; t < spec.seq_len; ++t) {
    CAPTURE(t);
    got = forward_cached(spec, params, ids.narrow(1, t, 1), caches);
    CHECK(caches.front().length() == t + 1);
    CHECK(torch::allclose(got, full[t], 1e-5, 1e-5));
  }
}

}  // namespace

TEST_CASE("the KV cache gives the uncached logits at every position: GPT-2") {
  check_cache_equals_forward(ModelSpec{"custom", 64, 12, 32, 2, 4});
}

TEST_CASE("the KV cache gives the uncached logits at every position: Llama with grouped-query attention") {
  ModelSpec s{"custom", 64, 12, 32, 2, 4};
  s.model_type = "llama";
  s.kv_heads = 2;
  s.intermediate_size = 48;
  s.tied_embeddings = false;
  check_cache_equals_forward(s);
}

TEST_CASE("generate refuses an empty or out-of-vocabulary prompt and bad sampling options") {
  const ModelSpec s{"custom", 64, 8, 32, 1, 4};
  GptOptions o;
  o.spec = s;
  Gpt gpt(o);
  const BlockParams params = [&gpt](std::size_t b) -> const Params& { return gpt.block_params(b); };
  SamplingOptions opt;
  auto error = [&](const std::vector<std::int64_t>& prompt) {
    return test::error_of([&] { generate(s, params, prompt, opt, torch::kCPU); });
  };
  CHECK(error({}).find("the prompt is empty") == 0);
  CHECK(error({1, 64}).find("prompt token 64 is outside the model's vocabulary [0, 64)") == 0);
  CHECK(error({1, 2, 3, 4, 5, 6, 7, 8, 9}).find("the prompt has 9 tokens, more than the model's 8 positions") == 0);
  opt.top_p = 0;
  CHECK(error({1}).find("--top-p must be in (0, 1]") == 0);
  opt.top_p = 1;
  opt.max_new_tokens = 20;
  CHECK(generate(s, params, {1, 2}, opt, torch::kCPU).size() == 8);  // stops at the positions
}
