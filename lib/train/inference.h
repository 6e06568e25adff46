// zinf::train — a trained or pretrained model for evaluation and generation.
// Implements: InferenceModel, the model of a Settings on its device and
// precision with its first weights from a WeightSource — through the ZeRO
// engine when the settings offload (stage 3, CPU or NVMe homes: a model
// larger than the GPU evaluates), else dense on the device — and
// evaluate(): the mean next-token loss and perplexity over a dataset in
// consecutive windows of seq_len + 1 tokens (stride seq_len, every target
// token counted once) or document windows, prompt tokens of fine-tuning
// examples and padding not counted (the sampler's windows, in file order),
// as `zinf eval` prints them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "config/settings.h"
#include "data/sampler.h"
#include "model/generate.h"

namespace zinf::data {
class Tokens;
}

namespace zinf::train {

class WeightSource;

class InferenceModel {
 public:
  InferenceModel(const config::Settings& settings, const WeightSource& weights);
  ~InferenceModel();
  InferenceModel(const InferenceModel&) = delete;
  InferenceModel& operator=(const InferenceModel&) = delete;

  // Sum of next-token cross entropies (fp32) over idx/targets [B, T] int64
  // (CPU); positions [B, T] for packed rows (model::Gpt::forward).
  double loss_sum(const torch::Tensor& idx, const torch::Tensor& targets, const torch::Tensor& positions = {});
  // The prompt and what follows it (dense models only: UsageError through the engine).
  std::vector<std::int64_t> generate(const std::vector<std::int64_t>& prompt, const model::SamplingOptions& options);
  const ModelSpec& spec() const;
  torch::Device device() const;
  bool through_engine() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct EvalResult {
  double loss = 0;          // mean next-token cross entropy, nats
  double perplexity = 0;    // exp(loss)
  std::int64_t tokens = 0;  // target tokens scored (not prompt or padding)
  std::int64_t windows = 0;
  double seconds = 0;
};

// max_windows: 0 = the whole file. UsageError when the file is shorter than
// one window or holds ids outside the vocabulary.
EvalResult evaluate(InferenceModel& model, const data::Tokens& tokens, std::int64_t seq_len, std::int64_t batch,
                    std::int64_t max_windows, data::Windows windows = data::Windows::kStream);

}  // namespace zinf::train
