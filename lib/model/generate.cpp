// zinf::model — KV-cached greedy and top-p generation.
#include "model/generate.h"

#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"
#include "model/layout.h"

namespace zinf::model {

torch::Tensor forward_cached(const ModelSpec& spec, const BlockParams& params, const torch::Tensor& tokens,
                             std::vector<KvCache>& caches) {
  const Architecture& arch = architecture_of(spec);
  const std::size_t blocks = std::size_t(spec.layers) + 2;  // embedding, layers, head
  if (caches.size() != std::size_t(spec.layers)) caches.assign(std::size_t(spec.layers), {});
  const std::int64_t first = caches.front().length();
  torch::Tensor x = arch.embed(tokens, params(0), spec, first);
  for (std::size_t b = 1; b + 1 < blocks; ++b) x = arch.block(x, params(b), spec, &caches[b - 1]);
  const torch::Tensor last = x.narrow(1, x.size(1) - 1, 1);
  return arch.head(last, params(blocks - 1), params(0), spec).reshape({-1}).to(torch::kFloat32);
}

namespace {

std::int64_t pick(const torch::Tensor& logits, const SamplingOptions& o, at::Generator& gen) {
  if (o.temperature == 0.0) return logits.argmax().item<std::int64_t>();
  torch::Tensor probs = (logits / o.temperature).softmax(-1).to(torch::kCPU);
  if (o.top_p < 1.0) {
    // HF's TopPLogitsWarper: drop the tokens past the top_p mass, keeping at least the most likely.
    const auto sorted = probs.sort(/*dim=*/-1, /*descending=*/true);
    const torch::Tensor values = std::get<0>(sorted), order = std::get<1>(sorted);
    const torch::Tensor before = values.cumsum(-1) - values;  // mass of the more likely tokens
    const torch::Tensor drop = before >= o.top_p;
    probs = probs.scatter(-1, order, values.masked_fill(drop, 0.0));
  }
  return at::multinomial(probs, 1, /*replacement=*/false, gen).item<std::int64_t>();
}

}  // namespace

std::vector<std::int64_t> generate(const ModelSpec& spec, const BlockParams& params,
                                   const std::vector<std::int64_t>& prompt, const SamplingOptions& o,
                                   torch::Device device) {
  if (prompt.empty()) throw UsageError("the prompt is empty", "give at least one token (--prompt-tokens 1,2,3)");
  for (std::int64_t t : prompt)
    if (t < 0 || t >= spec.vocab_size)
      throw UsageError("prompt token " + std::to_string(t) + " is outside the model's vocabulary [0, " +
                           std::to_string(spec.vocab_size) + ")",
                       "token ids come from the model's tokenizer");
  if (o.temperature < 0.0) throw UsageError("--temperature must be 0 (greedy) or more, got " + std::to_string(o.temperature));
  if (!(o.top_p > 0.0 && o.top_p <= 1.0)) throw UsageError("--top-p must be in (0, 1], got " + std::to_string(o.top_p));
  if (o.max_new_tokens < 0) throw UsageError("--max-new-tokens must be 0 or more");
  const std::int64_t limit = spec.position_count();
  if (std::int64_t(prompt.size()) > limit)
    throw UsageError("the prompt has " + std::to_string(prompt.size()) + " tokens, more than the model's " +
                         std::to_string(limit) + " positions",
                     "shorten the prompt");
  torch::NoGradGuard no_grad;
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  std::vector<std::int64_t> out = prompt;
  std::vector<KvCache> caches;
  torch::Tensor next = torch::tensor(prompt, torch::kInt64).view({1, -1}).to(device);
  for (std::int64_t i = 0; i < o.max_new_tokens && std::int64_t(out.size()) < limit; ++i) {
    const std::int64_t token = pick(forward_cached(spec, params, next, caches), o, gen);
    out.push_back(token);
    if (token == o.stop_token) break;
    next = torch::full({1, 1}, token, torch::TensorOptions().dtype(torch::kInt64).device(device));
  }
  return out;
}

}  // namespace zinf::model
