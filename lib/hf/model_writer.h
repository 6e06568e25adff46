// zinf::hf — writing a Hugging Face model directory.
// Implements: plan_shards(), which cuts an ordered tensor list into
// safetensors shards of at most max_shard_bytes the way transformers
// (huggingface_hub's split_state_dict_into_shards) does: a tensor joins the
// current shard unless that would pass the limit, then a new shard starts; a
// tensor larger than the limit gets a shard of its own, placed before the
// shard being filled; files are model-0000k-of-0000n.safetensors, or
// model.safetensors when one suffices. shard_index_json(), the
// model.safetensors.index.json of a sharded plan. write_model_dir(), which
// writes the whole directory — extra files (config.json,
// generation_config.json), the shards, the index when sharded — under
// OUT_DIR.tmp.<pid> and renames it to OUT_DIR when everything is on disk, so
// a directory named OUT_DIR is always complete. Tensor data comes from the
// caller as fp32 element ranges, in any order and of any size; it is
// converted to each tensor's dtype (F32, BF16, F16, round-to-nearest-even)
// through a bounded buffer, so no tensor needs to be in memory whole. No LibTorch here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "hf/safetensors.h"

namespace zinf::hf {

constexpr std::int64_t kDefaultMaxShardBytes = 5'000'000'000;  // "5GB", the default of transformers 4's save_pretrained
constexpr const char* kIndexFile = "model.safetensors.index.json";

struct ShardPlan {
  std::vector<std::string> files;                  // [shards] file names
  std::vector<std::vector<std::size_t>> tensors;   // [shards] indices into the tensor list, in list order
  std::int64_t total_bytes = 0;                    // tensor data of every shard (the index's total_size)
  std::int64_t total_parameters = 0;               // elements
  bool sharded() const { return files.size() > 1; }
};

// Bytes of one tensor's data (its dtype times its elements).
std::int64_t tensor_bytes(const TensorSpec& t);
// `max_shard_bytes` > 0; throws for a tensor name that appears twice.
ShardPlan plan_shards(const std::vector<TensorSpec>& tensors, std::int64_t max_shard_bytes);
// {"metadata": {"total_parameters", "total_size"}, "weight_map": {name: file}}, indented, newline-terminated.
std::string shard_index_json(const std::vector<TensorSpec>& tensors, const ShardPlan& plan);

// Receives elements [first, first + count) of the current tensor (flat order
// of its shape, the file's orientation) as fp32.
using TensorSink = std::function<void(std::int64_t first, std::int64_t count, const float* src)>;
// Streams every element of tensor `index` (of ModelDir::tensors) into `sink`
// exactly once, in pieces of the caller's choosing.
using TensorSource = std::function<void(std::size_t index, const TensorSink& sink)>;

struct ModelDir {
  std::vector<TensorSpec> tensors;            // in file order; dtype: F32, BF16 or F16 (what the files hold)
  std::map<std::string, std::string> files;   // other files: name -> contents (config.json, ...)
  std::int64_t max_shard_bytes = kDefaultMaxShardBytes;
  TensorSource source;
  std::int64_t buffer_bytes = std::int64_t(1) << 20;  // conversion buffer
  // An existing OUT_DIR is refused unless this is set: then (a run's own
  // output, rewritten on resume) it is replaced once the new one is complete.
  bool replace = false;
};

// Throws UsageError when `out_dir` cannot receive a model: it is a file, or a
// directory that is not empty (named, with a hint). A missing or empty one is fine.
void check_model_dir_target(const std::string& out_dir);
// Writes `dir` to `out_dir` (see the file comment); returns the shard plan.
// On any failure the temporary directory is removed and `out_dir` untouched.
// An existing non-empty `out_dir` is refused before anything is written
// (check_model_dir_target) unless dir.replace.
ShardPlan write_model_dir(const std::string& out_dir, const ModelDir& dir);

}  // namespace zinf::hf
