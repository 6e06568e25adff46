// zinf::train — checkpoints, sharded by rank and streamed.
// Implements: the checkpoint directory in DeepSpeed's layout
// (<output>/checkpoints/global_step<N>/ plus a `latest` file naming the
// newest complete one); saving one checkpoint from all ranks together;
// pruning to the newest `keep`; CheckpointReader, which serves any range of
// the flat state from a checkpoint's shard files, whatever world size wrote
// them; and export of the fp32 weights to model.safetensors (what
// DeepSpeed's zero_to_fp32 does).
//
// Format version 2 (written): global_step<N>/ holds
//   state.rank<r>.safetensors  one per rank r: tensors params, exp_avg,
//       exp_avg_sq ([count] fp32 each: the master weights and AdamW moments
//       of the ranges of the flat vector rank r owned, back to back), and
//       metadata format "zinf-checkpoint-shard", version, rank, world_size,
//       step, numel and "ranges" ([[begin, count], ...] in flat elements);
//   checkpoint.json  format "zinf-checkpoint", version, world_size, numel,
//       model (dimensions), state (step, data position, loss scaler) and the
//       shard file names; written last, so it marks the checkpoint complete.
// Version 1 (read): one state.safetensors holding the whole flat state, with
// the same format/model/state entries in its metadata.
//
// Saving: every rank streams its ranges into its shard file in the pieces a
// StateSink delivers (the header is computed up front and pieces land at
// known offsets), so no rank ever holds more than its own buffers; barrier;
// rank 0 writes checkpoint.json, renames the temporary directory to
// global_step<N>, updates `latest`, prunes; barrier. A kill at any point
// leaves `latest` naming the last complete checkpoint. Shard files go to one
// directory: on several nodes, output_dir must be on a shared file system.
// No LibTorch here: the state passes as float pointers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/flat_state.h"
#include "core/model_spec.h"
#include "data/sampler.h"
#include "optim/loss_scaler.h"

namespace zinf::train {

constexpr const char* kCheckpointFormat = "zinf-checkpoint";
constexpr const char* kShardFormat = "zinf-checkpoint-shard";
constexpr int kCheckpointVersion = 2;              // what save() writes
constexpr const char* kCheckpointMetaFile = "checkpoint.json";
constexpr const char* kCheckpointV1File = "state.safetensors";

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

// "global_step10".
std::string checkpoint_tag(std::int64_t step);
// "state.rank3.safetensors".
std::string shard_file_name(int rank);

// The ranks saving one checkpoint together. One rank: the defaults.
struct CheckpointGroup {
  int rank = 0;
  int world_size = 1;
  std::function<void()> barrier;  // returns once every rank called it; may be empty on one rank
};

// What one rank puts into a checkpoint: the ranges of the flat vector whose
// state it holds (increasing, disjoint; over all ranks they cover the model
// exactly once) and a function that streams their master weights and moments
// into a sink, in increasing order (zero::OffloadEngine::save_state, or the
// data-parallel optimizer's shard).
struct ShardContent {
  std::vector<FlatRange> ranges;
  std::function<void(const StateSink&)> stream;
};

class CheckpointDir {
 public:
  // `dir` is <output>/checkpoints; created when missing. Rank 0 removes the
  // temporary directories a killed run left behind.
  CheckpointDir(std::string dir, std::int64_t keep, CheckpointGroup group = {});

  // Collective: every rank of the group calls it with the same state. Writes
  // global_step<state.step> (see the file comment) and points `latest` at it;
  // returns its path.
  std::string save(const TrainerState& state, const ModelSpec& spec, const ShardContent& shard);
  // The checkpoint `latest` names, or nullopt when there is none.
  std::optional<std::string> latest() const;
  const std::string& dir() const { return dir_; }

 private:
  void prune();
  std::string dir_;
  std::int64_t keep_;
  CheckpointGroup group_;
};

struct CheckpointInfo {
  std::string path;         // the global_step<N> directory
  int version = 0;          // 1: one state.safetensors; 2: sharded
  int world_size = 1;       // ranks that wrote it
  ModelSpec spec;
  TrainerState state;
  std::int64_t numel = 0;   // elements of the flat vector
};

// Accepts a checkpoint directory, a checkpoints/ directory with `latest`, or
// an output directory holding checkpoints/latest; returns the checkpoint
// directory. Throws UsageError saying which of the three was expected.
std::string resolve_checkpoint(const std::string& path);

// Opens every file of a checkpoint and checks it before anything is read:
// format and version, every rank's shard file present and its header intact
// (the error names the file and the rank), shard metadata agreeing with
// checkpoint.json, and the shards' ranges covering the flat vector exactly
// once. Then serves any range, whichever shards hold it.
class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& checkpoint_dir);
  ~CheckpointReader();
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;

  const CheckpointInfo& info() const { return info_; }
  // Fills [range.count] floats of each non-null pointer with the master
  // weights, m and v of `range` (within [0, numel)).
  void read(const FlatRange& range, float* master, float* m, float* v) const;
  // read() as a StateSource; valid while the reader lives.
  StateSource source() const;

 private:
  struct Shard;
  struct Piece {
    FlatRange range;          // flat elements
    std::size_t shard = 0;    // index into shards_
    std::int64_t local = 0;   // elements into the shard's tensors
  };
  CheckpointInfo info_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<Piece> pieces_;  // sorted by range.begin, tiling [0, numel)
};

// The checkpoint's metadata only (CheckpointReader(dir).info()).
CheckpointInfo read_checkpoint_info(const std::string& checkpoint_dir);

// Writes the [spec.parameter_count()] fp32 weights that `read_master` fills
// range by range as model.safetensors with nanoGPT's parameter names: the
// data section is the flat vector in layout order (the LM head is tied to
// transformer.wte.weight and not stored twice; metadata says so), streamed
// through a buffer of at most `chunk` elements.
void write_model_safetensors(const std::string& path, const ModelSpec& spec,
                             const std::function<void(const FlatRange&, float*)>& read_master,
                             std::int64_t chunk = std::int64_t(1) << 22);

// zinf export: the checkpoint at `path` (see resolve_checkpoint), whatever
// world size wrote it, to `out`. Returns the checkpoint directory used.
std::string export_checkpoint(const std::string& path, const std::string& out);

}  // namespace zinf::train
