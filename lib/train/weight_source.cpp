// zinf::train — the seeded initialisation and HF directories as WeightSources.
#include "train/weight_source.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/fs.h"
#include "hf/pretrained.h"
#include "model/architecture.h"
#include "model/layout.h"
#include "train/checkpoint.h"

namespace zinf::train {
namespace {

class RandomWeights final : public WeightSource {
 public:
  RandomWeights(const ModelSpec& spec, std::uint64_t seed) : spec_(spec), seed_(seed), layout_(model::model_layout(spec)) {}

  void read(std::size_t block, std::int64_t first, std::int64_t count, float* dst) const override {
    // A block's values come from its own generator in one draw: a range of it
    // is cut from the whole block, so every rank sees the same values.
    if (first == 0 && count == layout_.at(block).numel) return model::initial_block(spec_, seed_, block, dst);
    std::vector<float> whole(std::size_t(layout_.at(block).numel));
    model::initial_block(spec_, seed_, block, whole.data());
    std::memcpy(dst, whole.data() + first, sizeof(float) * std::size_t(count));
  }
  std::string describe() const override { return "random (seed " + std::to_string(seed_) + ")"; }

 private:
  ModelSpec spec_;
  std::uint64_t seed_;
  std::vector<model::BlockLayout> layout_;
};

class Pretrained final : public WeightSource {
 public:
  Pretrained(const ModelSpec& spec, const std::string& dir) : layout_(model::model_layout(spec)) {
    std::vector<hf::ExpectedTensor> params;
    for (const auto& b : layout_) {
      first_param_.push_back(params.size());
      for (const auto& p : b.params) params.push_back({p.name, p.shape});
    }
    weights_ = std::make_unique<hf::PretrainedWeights>(dir, spec.model_type, spec.tied_embeddings, params);
  }

  void read(std::size_t block, std::int64_t first, std::int64_t count, float* dst) const override {
    const model::BlockLayout& b = layout_.at(block);
    const std::int64_t end = first + count;
    for (std::size_t i = 0; i < b.params.size(); ++i) {
      const model::ParamInfo& p = b.params[i];
      const std::int64_t begin = p.offset - b.offset;  // within the block
      const std::int64_t lo = std::max(first, begin), hi = std::min(end, begin + p.numel);
      if (lo < hi) weights_->read(first_param_[block] + i, lo - begin, hi - lo, dst + (lo - first));
    }
  }
  std::string describe() const override {
    return "pretrained " + weights_->dir() + " (" + std::to_string(weights_->file_count()) + " file" +
           (weights_->file_count() == 1 ? "" : "s") + ")";
  }

 private:
  std::vector<model::BlockLayout> layout_;
  std::vector<std::size_t> first_param_;  // [blocks] index of each block's first parameter
  std::unique_ptr<hf::PretrainedWeights> weights_;
};

class CheckpointWeights final : public WeightSource {
 public:
  explicit CheckpointWeights(const std::string& path)
      : dir_(resolve_checkpoint(path)), reader_(dir_), layout_(model::model_layout(reader_.info().spec)) {}

  void read(std::size_t block, std::int64_t first, std::int64_t count, float* dst) const override {
    reader_.read(FlatRange{layout_.at(block).offset + first, count}, dst, nullptr, nullptr);
  }
  std::string describe() const override {
    return "checkpoint " + dir_ + " (step " + std::to_string(reader_.info().state.step) + ")";
  }
  const ModelSpec& spec() const { return reader_.info().spec; }

 private:
  std::string dir_;
  CheckpointReader reader_;
  std::vector<model::BlockLayout> layout_;
};

}  // namespace

std::unique_ptr<WeightSource> checkpoint_weights(const std::string& path, ModelSpec* spec) {
  auto w = std::make_unique<CheckpointWeights>(path);
  if (spec) *spec = w->spec();
  return w;
}

void for_each_block(const WeightSource& weights, const std::vector<model::BlockLayout>& layout,
                    const std::function<void(std::size_t block, const float* values)>& each) {
  std::int64_t largest = 1;
  for (const auto& b : layout) largest = std::max(largest, b.numel);
  std::vector<float> buf(static_cast<std::size_t>(largest));
  for (std::size_t b = 0; b < layout.size(); ++b) {
    weights.read(b, 0, layout[b].numel, buf.data());
    each(b, buf.data());
  }
}

bool is_hf_model_dir(const std::string& path) { return fs::exists(path + "/config.json"); }

std::unique_ptr<WeightSource> random_weights(const ModelSpec& spec, std::uint64_t seed) {
  return std::make_unique<RandomWeights>(spec, seed);
}

namespace {

class Placeholder final : public WeightSource {
 public:
  void read(std::size_t, std::int64_t, std::int64_t count, float* dst) const override {
    std::fill(dst, dst + count, 0.0f);
  }
  std::string describe() const override { return "from the checkpoint being resumed"; }
};

}  // namespace

std::unique_ptr<WeightSource> placeholder_weights() { return std::make_unique<Placeholder>(); }

std::unique_ptr<WeightSource> pretrained_weights(const ModelSpec& spec, const std::string& dir) {
  return std::make_unique<Pretrained>(spec, dir);
}

}  // namespace zinf::train
