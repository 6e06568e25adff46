// zinf::model — text generation from a decoder, with a KV cache.
// Implements: generate(), which runs the prompt through every block once
// (prefill), keeping each block's keys and values (KvCache), then adds one
// token at a time attending over the cache: greedy (temperature 0) or
// sampled with temperature and top-p (nucleus) from a seeded generator, so
// the same seed gives the same text. Stops at max_new_tokens, at the
// model's positions, or after eos when asked.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "core/model_spec.h"
#include "model/architecture.h"

namespace zinf::model {

struct SamplingOptions {
  std::int64_t max_new_tokens = 32;
  double temperature = 0.0;   // 0: greedy (argmax)
  double top_p = 1.0;         // keep the smallest set of tokens whose probability reaches top_p
  std::uint64_t seed = 0;
  std::int64_t stop_token = -1;  // stop after generating it (-1: never)
};

// The parameter views of block b of model_layout(spec) (e.g. Gpt::block_params).
using BlockParams = std::function<const Params&(std::size_t block)>;

// The prompt followed by the generated tokens. Runs under NoGradGuard on
// `device`; UsageError for an empty prompt, a token outside the vocabulary or
// bad sampling options.
std::vector<std::int64_t> generate(const ModelSpec& spec, const BlockParams& params,
                                   const std::vector<std::int64_t>& prompt, const SamplingOptions& options,
                                   torch::Device device);

// The next-token logits [vocab] (fp32) after `tokens`, through the cache;
// exposed for tests (cached = uncached).
torch::Tensor forward_cached(const ModelSpec& spec, const BlockParams& params, const torch::Tensor& tokens,
                             std::vector<KvCache>& caches);

}  // namespace zinf::model
