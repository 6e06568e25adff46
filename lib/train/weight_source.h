// zinf::train — where a run's first weights come from.
// Implements: WeightSource, the fp32 values of any element range of any block
// of model_layout(spec): the seeded from-scratch initialisation
// (model::initial_block), or a Hugging Face model directory
// (hf::PretrainedWeights, checked against the layout when opened). The
// engines fill their homes block by block, each rank asking only for the
// range it keeps, so the whole model is never in host memory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/model_spec.h"
#include "model/layout.h"

namespace zinf::train {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // Elements [first, first + count) of block `block` into dst (fp32).
  virtual void read(std::size_t block, std::int64_t first, std::int64_t count, float* dst) const = 0;
  // For the log: "random (seed 1234)" or "pretrained DIR (3 files)".
  virtual std::string describe() const = 0;
};

std::unique_ptr<WeightSource> random_weights(const ModelSpec& spec, std::uint64_t seed);
// Zeros, for a run about to load every weight from its checkpoint: nothing
// is drawn or read that the checkpoint replaces.
std::unique_ptr<WeightSource> placeholder_weights();
// Opens `dir`'s weights for spec's layout; UsageError naming any tensor that
// is missing, unexpected or of the wrong shape.
std::unique_ptr<WeightSource> pretrained_weights(const ModelSpec& spec, const std::string& dir);
// The master weights of a zinf checkpoint (any form resolve_checkpoint
// takes; every shard checked as CheckpointReader does) for its own model,
// which is returned in *spec.
std::unique_ptr<WeightSource> checkpoint_weights(const std::string& path, ModelSpec* spec);
// Every block of `layout`, in order, read whole from `weights` through one
// block-sized host buffer: each(b, values) gets block b's [layout[b].numel]
// fp32 values. How the engines that hold whole blocks (stages 0-2, eval and
// generate) fill their parameters.
void for_each_block(const WeightSource& weights, const std::vector<model::BlockLayout>& layout,
                    const std::function<void(std::size_t block, const float* values)>& each);

// True when `path` is a Hugging Face model directory (holds config.json);
// otherwise `zinf eval` and `zinf generate` read it as a checkpoint.
bool is_hf_model_dir(const std::string& path);

}  // namespace zinf::train
