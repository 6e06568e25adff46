// zinf::train — InferenceModel (dense or through the ZeRO engine) and evaluate().
#include "train/inference.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "data/sampler.h"
#include "data/token_file.h"
#include "model/gpt.h"
#include "train/device.h"
#include "train/trainer.h"
#include "train/weight_source.h"
#include "train/zero_gpt.h"

namespace zinf::train {

struct InferenceModel::Impl {
  ModelSpec spec;
  torch::Device device = torch::kCPU;
  std::unique_ptr<model::Gpt> dense;
  std::unique_ptr<ZeroGpt> engine;

  torch::Tensor forward(const torch::Tensor& idx, const torch::Tensor& positions) {
    return engine ? engine->forward(idx, positions) : dense->forward(idx, positions);
  }
};

InferenceModel::InferenceModel(const config::Settings& s, const WeightSource& weights) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.spec = s.model;
  m.device = pick_device(s, false, 0);
  const torch::Dtype dtype = model_dtype(s, m.device);
  if (uses_offload_engine(s)) {
    m.engine = std::make_unique<ZeroGpt>(s.model, weights, resolve_offload(s, m.device, dtype).engine);
    return;
  }
  m.dense = std::make_unique<model::Gpt>(model::GptOptions{s.model, dtype, m.device, false, 0});
  torch::NoGradGuard no_grad;
  model::Gpt& g = *m.dense;
  for_each_block(weights, g.layout(), [&g](std::size_t b, const float* values) {
    const auto& block = g.layout()[b];
    g.params().narrow(0, block.offset, block.numel)
        .copy_(torch::from_blob(const_cast<float*>(values), {block.numel}, torch::kFloat32));
  });
}

InferenceModel::~InferenceModel() = default;

const ModelSpec& InferenceModel::spec() const { return impl_->spec; }
torch::Device InferenceModel::device() const { return impl_->device; }
bool InferenceModel::through_engine() const { return impl_->engine != nullptr; }

double InferenceModel::loss_sum(const torch::Tensor& idx, const torch::Tensor& targets,
                                const torch::Tensor& positions) {
  torch::NoGradGuard no_grad;
  const torch::Tensor logits =
      impl_->forward(idx.to(impl_->device), positions.defined() ? positions.to(impl_->device) : positions);
  return model::next_token_loss(logits, targets.to(impl_->device), /*sum=*/true).item<double>();
}

std::vector<std::int64_t> InferenceModel::generate(const std::vector<std::int64_t>& prompt,
                                                   const model::SamplingOptions& options) {
  if (!impl_->dense)
    throw UsageError("zinf generate runs the model whole on one device, not through the ZeRO engine",
                     "drop the stage 3 / offload options (--zero-stage none), with --device cpu for a model larger "
                     "than the GPU");
  model::Gpt& g = *impl_->dense;
  return model::generate(impl_->spec, [&g](std::size_t b) -> const model::Params& { return g.block_params(b); },
                         prompt, options, impl_->device);
}

EvalResult evaluate(InferenceModel& model, const data::Tokens& tokens, std::int64_t seq_len, std::int64_t batch,
                    std::int64_t max_windows, data::Windows mode) {
  const auto start = std::chrono::steady_clock::now();
  if (seq_len < 1 || batch < 1) throw UsageError("--seq-len and --batch-size must be at least 1");
  if (seq_len > model.spec().position_count())
    throw UsageError("--seq-len " + std::to_string(seq_len) + " is beyond the model's " +
                         std::to_string(model.spec().position_count()) + " positions",
                     "use --seq-len " + std::to_string(model.spec().position_count()) + " or less");
  data::check_vocab(tokens, model.spec().vocab_size);
  data::Sampler sampler(tokens, {0, tokens.size()}, seq_len, 0, /*shuffle=*/false, mode);
  std::int64_t windows = sampler.windows_per_epoch();
  if (max_windows > 0) windows = std::min(windows, max_windows);
  EvalResult r;
  double total = 0;
  for (std::int64_t w = 0; w < windows; w += batch) {
    const std::int64_t rows = std::min(batch, windows - w);
    const data::Batch b = sampler.next(rows);
    const auto as_tensor = [&](const std::vector<std::int64_t>& v) {
      return torch::from_blob(const_cast<std::int64_t*>(v.data()), {rows, seq_len}, torch::kInt64).clone();
    };
    total += model.loss_sum(as_tensor(b.inputs), as_tensor(b.targets),
                            b.positions.empty() ? torch::Tensor() : as_tensor(b.positions));
    r.tokens += data::trained_targets(b);
  }
  r.windows = windows;
  r.loss = total / double(std::max<std::int64_t>(r.tokens, 1));
  r.perplexity = std::exp(r.loss);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace zinf::train
