// zinf::train — the GPT trained through the ZeRO-3 / ZeRO-Infinity engine.
// Implements: ZeroGpt, which hands the GPT's blocks (embedding, transformer
// blocks, head tied to the embedding) to zero::OffloadEngine as callbacks
// that rebuild parameter views over the gathered flat buffer, so the model
// never holds its parameters and the engine never sees the model; and
// resolve_offload(), which turns the ZeRO settings into engine options,
// decides device gradient sums on "auto" from the planner's estimate and the
// GPU's memory, and falls back from NVMe to CPU offload (one warning with the
// reason) when the NVMe path is unusable at start, unless strict_nvme makes
// that an error.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/settings.h"
#include "core/model_spec.h"
#include "model/layout.h"
#include "zero/offload_engine.h"

namespace zinf::train {

class WeightSource;

// What offload really runs with, after the NVMe checks.
struct OffloadPlan {
  zero::OffloadEngineOptions engine;
  bool fell_back = false;   // NVMe was asked for and CPU offload runs instead
  std::string reason;       // why, when fell_back
  bool device_sums_auto = false;  // zinf.offload.device_grad_accumulation was "auto"
  std::string device_sums_why;    // how "auto" was decided, for the log
};

// Engine options for `s` on `device`, one of `world` ranks. NVMe homes are
// checked (directory can be created, io_uring works, free space holds the
// swap files); on failure warns once and uses CPU offload, or throws
// zinf::Error (exit code 3) when s.strict_nvme.
OffloadPlan resolve_offload(const config::Settings& s, torch::Device device, torch::Dtype dtype, int world = 1);

// The elements of the flat vector weight decay leaves alone, for both
// optimizer paths (DataParallel, the engine): norms, biases and embeddings
// (model::no_decay_ranges), or none when zinf.optimizer.weight_decay_on is "all".
std::vector<FlatRange> weight_decay_exempt(const config::Settings& s);

class ZeroGpt {
 public:
  // initial: [spec.parameter_count()] fp32 CPU (model::Gpt::initial_weights).
  ZeroGpt(const ModelSpec& spec, const torch::Tensor& initial, zero::OffloadEngineOptions options);
  // The first weights read block by block from `weights` (the seeded
  // initialisation or an HF directory), each rank only the range it keeps:
  // the model's fp32 weights never sit in host memory whole.
  ZeroGpt(const ModelSpec& spec, const WeightSource& weights, zero::OffloadEngineOptions options);

  // Next-token cross entropy in fp32 over the targets that are not
  // kIgnoreTarget, their mean or (loss_sum) their sum; backward() on it sends
  // every block's gradient to the engine. idx, targets: [B, T] int64 on the
  // device; positions, when given, as model::Gpt::forward takes them (packed rows).
  torch::Tensor loss(const torch::Tensor& idx, const torch::Tensor& targets, const torch::Tensor& positions = {});
  torch::Tensor loss_sum(const torch::Tensor& idx, const torch::Tensor& targets, const torch::Tensor& positions = {});
  torch::Tensor forward(const torch::Tensor& idx, const torch::Tensor& positions = {});  // logits [B, T, vocab]

  zero::OffloadEngine& engine() { return *engine_; }
  const std::vector<model::BlockLayout>& layout() const { return layout_; }

 private:
  ModelSpec spec_;
  std::vector<model::BlockLayout> layout_;
  std::unique_ptr<zero::OffloadEngine> engine_;
};

}  // namespace zinf::train
