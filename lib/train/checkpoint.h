// zinf::train — checkpoints, sharded by rank and streamed.
// Implements: the checkpoint directory in DeepSpeed's layout
// (<output>/checkpoints/global_step<N>/ plus a `latest` file naming the
// newest complete one); saving one checkpoint from all ranks together;
// pruning to the newest `keep`; CheckpointReader, which serves any range of
// the flat state from a checkpoint's shard files, whatever world size wrote
// them; and export of the weights as a Hugging Face model directory
// (config.json, safetensors shards + index; DeepSpeed's zero_to_fp32 plus
// transformers' save_pretrained).
//
// Format version 3 (written): global_step<N>/ holds
//   state.rank<r>.safetensors  one per rank r: tensors params, exp_avg,
//       exp_avg_sq ([count] fp32 each: the master weights and AdamW moments
//       of the ranges of the flat vector rank r owned, back to back), and
//       metadata format "zinf-checkpoint-shard", version, rank, world_size,
//       step, numel, "ranges" ([[begin, count], ...] in flat elements),
//       crc32c_chunk_bytes (C, 4 MiB), "crc32c.<tensor>" (the CRC32C of each
//       C bytes of the tensor's data, the last chunk shorter: 8 hex digits
//       each, comma-separated) and header_crc32c (of the header's content:
//       every tensor's dtype, shape and offsets and every other metadata
//       entry, as JSON);
//   checkpoint.json  format, version, world_size, numel, model (dimensions),
//       state (step, data position, loss scaler, the dataset's path, token
//       count and CRC32C, the batch shape: micro-batch, grad accumulation,
//       ranks, and the training precision, since the HF export: older
//       checkpoints read as fp32), the shard file names and crc32c (of the rest of the file as
//       compact JSON); written last, so it marks the checkpoint complete.
// Version 2 (read, with one warning: no checksums): the same without the
// crc32c entries and the dataset checksum and batch shape.
// Version 1 (read, likewise): one state.safetensors holding the whole flat
// state, with the same format/model/state entries in its metadata.
//
// Reading verifies every byte it hands out: whole chunks in place, and the
// chunks a range starts or ends inside through a one-chunk cache per tensor,
// so any range of any world size is checked against the chunks it touches;
// the values read must be finite (and exp_avg_sq not negative). A mismatch,
// a NaN, a garbled header or checkpoint.json is a "corrupt checkpoint" error
// naming the file, the tensor and the chunk.
//
// Saving: every rank streams its ranges into its shard file in the pieces a
// StateSink delivers (the header is computed up front and pieces land at
// known offsets), so no rank ever holds more than its own buffers; barrier;
// rank 0 writes checkpoint.json, renames the temporary directory to
// global_step<N>, updates `latest`, prunes; barrier. Each shard's CRCs are
// computed as its pieces stream past (they arrive in order), and written
// into the header, whose size was fixed with placeholders, before the
// commit: no second pass over the data. A kill at any point
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
#include "hf/dtype.h"
#include "hf/model_writer.h"
#include "optim/loss_scaler.h"

namespace zinf::train {

constexpr const char* kCheckpointFormat = "zinf-checkpoint";
constexpr const char* kShardFormat = "zinf-checkpoint-shard";
constexpr int kCheckpointVersion = 3;              // what save() writes
constexpr const char* kCheckpointMetaFile = "checkpoint.json";
constexpr const char* kCheckpointV1File = "state.safetensors";
constexpr std::int64_t kChecksumChunkBytes = std::int64_t(4) << 20;  // bytes of tensor data per CRC32C

// What the data position counts in: the dataset and the batch. A resume on
// other data, or with another global batch, would not continue the run.
struct DataShape {
  std::string dataset_path;          // as this run was given it
  std::uint32_t dataset_crc32c = 0;  // of data::Tokens::fingerprint_bytes (each file's size, first and last MiB)
  std::int64_t micro_batch = 0;      // sequences per rank per micro-batch; 0: not recorded (before version 3)
  std::int64_t grad_accum = 0;       // micro-batches per step
  std::int64_t world_size = 0;       // ranks
  std::int64_t global_batch() const { return micro_batch * grad_accum * world_size; }  // sequences per step
};

struct TrainerState {
  std::int64_t step = 0;                   // optimizer steps completed
  std::int64_t adam_steps = 0;             // steps applied (fp16 skips overflowing ones)
  std::int64_t dataset_tokens = 0;         // size of the data the position refers to
  std::int64_t tokens_seen = 0;            // training tokens consumed
  std::uint64_t seed = 0;
  data::SamplerState data;                 // position in the training split
  bool has_loss_scaler = false;            // fp16 runs
  optim::LossScaler::State loss_scaler{};  // valid when has_loss_scaler
  DataShape shape;                         // what `data` refers to
  std::string precision;                   // "bf16" | "fp16" | "fp32" the run trained in; "": not recorded (read as fp32)
};

// What keeps a run from resuming from `saved` in a run set up as `now`, one
// line each (empty: it may): another dataset (token count, or content where
// the checkpoint recorded its CRC32C) or another global batch. A different
// world size, micro-batch or accumulation with the same global batch is
// fine: the data position counts samples of the global batch.
std::vector<std::string> resume_mismatches(const TrainerState& saved, const TrainerState& now);

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
  // temporary directories a killed run left behind. `checksum_chunk_bytes`
  // (a multiple of 4) is the data each CRC32C covers; tests make it small.
  CheckpointDir(std::string dir, std::int64_t keep, CheckpointGroup group = {},
                std::int64_t checksum_chunk_bytes = kChecksumChunkBytes);

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
  std::int64_t chunk_bytes_;
};

struct CheckpointInfo {
  std::string path;         // the global_step<N> directory
  int version = 0;          // 1: one state.safetensors; 2: sharded; 3: sharded, with checksums
  int world_size = 1;       // ranks that wrote it
  ModelSpec spec;
  TrainerState state;
  std::int64_t numel = 0;   // elements of the flat vector
};

// Accepts a checkpoint directory, a checkpoints/ directory with `latest`, or
// an output directory holding checkpoints/latest; returns the checkpoint
// directory. Throws UsageError saying which of the three was expected, or
// that `latest` does not name a complete global_step<N> (quoting at most 64
// characters of it, unprintable bytes escaped).
std::string resolve_checkpoint(const std::string& path);

// Opens every file of a checkpoint and checks it before anything is read:
// format and version, checkpoint.json's checksum, every rank's shard file
// present and its header intact and matching its checksum (the error names
// the file and the rank), shard metadata agreeing with checkpoint.json, and
// the shards' ranges covering the flat vector exactly once. Then serves any
// range, whichever shards hold it, verified (see the file comment).
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
  // The files it reads: checkpoint.json and the shards (version 1: state.safetensors).
  std::vector<std::string> files() const;

 private:
  struct Shard;
  struct ChunkCache;
  // Elements [first, first + count) of tensor t of shard s into dst, checked
  // against the shard's CRCs (when it has them) and for non-finite values.
  void read_tensor(std::size_t s, int t, std::int64_t first, std::int64_t count, float* dst) const;
  struct Piece {
    FlatRange range;          // flat elements
    std::size_t shard = 0;    // index into shards_
    std::int64_t local = 0;   // elements into the shard's tensors
  };
  CheckpointInfo info_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<Piece> pieces_;  // sorted by range.begin, tiling [0, numel)
  std::unique_ptr<ChunkCache> cache_;  // the last partly read chunk of each tensor, verified
};

// The checkpoint's metadata only (CheckpointReader(dir).info()).
CheckpointInfo read_checkpoint_info(const std::string& checkpoint_dir);

// The dtype of an exported model: "bf16" | "fp16" | "fp32" (what --dtype and
// --precision say); anything else is a UsageError naming the allowed ones.
hf::Dtype export_dtype(const std::string& name);

struct ExportOptions {
  std::string dtype;  // "bf16" | "fp16" | "fp32"; empty: the checkpoint's training precision (fp32 when unrecorded)
  std::int64_t max_shard_bytes = hf::kDefaultMaxShardBytes;
  bool replace = false;  // replace an existing model directory (a run's own output/model)
};

// Writes the weights that `read_master` fills range by range (fp32, the flat
// vector in model_layout order) as a Hugging Face model directory at
// `out_dir` (hf::write_model_dir): config.json and generation_config.json for
// `spec`, safetensors shards of at most max_shard_bytes with their index, in
// `dtype`. Tensor names are zinf's parameter names (HF's state_dict names);
// GPT-2's Conv1D weights (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) are
// written [in, out] as HF stores them, transposed a tile of whole rows at a
// time; a tied head is not written. Reads pieces of at most `chunk` elements.
hf::ShardPlan write_hf_model(const std::string& out_dir, const ModelSpec& spec, hf::Dtype dtype,
                             const ExportOptions& options,
                             const std::function<void(const FlatRange&, float*)>& read_master,
                             std::int64_t chunk = std::int64_t(1) << 22);

// zinf export: the checkpoint at `path` (see resolve_checkpoint), whatever
// world size wrote it, to the model directory `out_dir` (write_hf_model).
// Refuses an existing non-empty `out_dir` (so never a checkpoint's own
// files) before reading anything. Returns the checkpoint directory used.
std::string export_checkpoint(const std::string& path, const std::string& out_dir, const ExportOptions& options = {});

}  // namespace zinf::train
