// zinf::train — checkpoints.
// Implements: the checkpoint directory in DeepSpeed's layout
// (<output>/checkpoints/global_step<N>/ plus a `latest` file naming the
// newest complete one), written to a temporary directory and renamed so a
// kill at any moment never leaves a half-written checkpoint as the latest;
// pruning to the newest `keep`; reading one back with its format and version
// checked; and export of the fp32 weights to model.safetensors (what
// DeepSpeed's zero_to_fp32 does). One checkpoint is one safetensors file,
// state.safetensors: tensors params / exp_avg / exp_avg_sq (flat fp32 master
// weights and AdamW moments) and metadata "format" = "zinf-checkpoint",
// "version", "model" (dimensions) and "state" (step, data position, loss
// scaler) as JSON. No LibTorch here: tensors pass as float pointers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/model_spec.h"
#include "data/sampler.h"
#include "optim/loss_scaler.h"

namespace zinf::train {

constexpr const char* kCheckpointFormat = "zinf-checkpoint";
constexpr int kCheckpointVersion = 1;
constexpr const char* kCheckpointFile = "state.safetensors";

struct TrainerState {
  std::int64_t step = 0;                   // optimizer steps completed
  std::int64_t adam_steps = 0;             // steps applied (fp16 skips overflowing ones)
  std::int64_t dataset_tokens = 0;         // size of the data the position refers to
  std::int64_t tokens_seen = 0;            // training tokens consumed
  std::uint64_t seed = 0;
  data::SamplerState data;                 // position in the training split
  bool has_loss_scaler = false;            // fp16 runs
  optim::LossScaler::State loss_scaler{};  // valid when has_loss_scaler
};

struct FlatState {
  const float* params = nullptr;      // [numel] fp32 master weights
  const float* exp_avg = nullptr;     // [numel] AdamW first moment
  const float* exp_avg_sq = nullptr;  // [numel] AdamW second moment
  std::int64_t numel = 0;
};

// "global_step10".
std::string checkpoint_tag(std::int64_t step);

class CheckpointDir {
 public:
  // `dir` is <output>/checkpoints; created when missing. Leftover temporary
  // directories of a killed run are removed.
  CheckpointDir(std::string dir, std::int64_t keep);

  // Writes global_step<state.step> and points `latest` at it; returns its path.
  std::string save(const TrainerState& state, const ModelSpec& spec, const FlatState& tensors);
  // The checkpoint `latest` names, or nullopt when there is none.
  std::optional<std::string> latest() const;
  const std::string& dir() const { return dir_; }

 private:
  void prune();
  std::string dir_;
  std::int64_t keep_;
};

struct CheckpointInfo {
  std::string path;   // the global_step<N> directory
  ModelSpec spec;
  TrainerState state;
  std::int64_t numel = 0;
};

// Accepts a checkpoint directory, a checkpoints/ directory with `latest`, or
// an output directory holding checkpoints/latest; returns the checkpoint
// directory. Throws UsageError saying which of the three was expected.
std::string resolve_checkpoint(const std::string& path);

// Reads and checks a checkpoint's metadata (format, version, sizes).
CheckpointInfo read_checkpoint_info(const std::string& checkpoint_dir);

// Reads its tensors into caller buffers of info.numel floats each (any may be null).
void read_checkpoint_tensors(const CheckpointInfo& info, float* params, float* exp_avg, float* exp_avg_sq);

// Writes `params` ([spec.parameter_count()] fp32) as model.safetensors with
// nanoGPT's parameter names (the LM head is tied to transformer.wte.weight and
// not stored twice; metadata says so).
void write_model_safetensors(const std::string& path, const ModelSpec& spec, const float* params);

// zinf export: the checkpoint at `path` (see resolve_checkpoint) to `out`.
// Returns the checkpoint directory used.
std::string export_checkpoint(const std::string& path, const std::string& out);

}  // namespace zinf::train
