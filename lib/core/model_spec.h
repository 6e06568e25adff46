// zinf::core — model shapes.
// Implements: ModelSpec, the dimensions of a GPT-style decoder, the largest
// dimensions zinf accepts, the catalogue of named sizes (tiny ... 13b) and the
// parameter count formula (checked: it never overflows). It lives in core
// because config (resolution), plan (estimates) and model (building) all
// speak it; it knows nothing about tensors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace zinf {

// The largest dimensions zinf accepts: far beyond any model trained (GPT-3
// has hidden 12288, 96 layers, 2048 tokens), small enough that the sizes the
// planner computes from them fit 64 bits. The schema and the planner both
// bound their inputs with these.
constexpr std::int64_t kMaxHiddenSize = std::int64_t(1) << 20;  // 1048576
constexpr std::int64_t kMaxLayers = std::int64_t(1) << 16;      // 65536
constexpr std::int64_t kMaxHeads = std::int64_t(1) << 16;       // 65536
constexpr std::int64_t kMaxSeqLen = std::int64_t(1) << 24;      // 16777216 tokens
constexpr std::int64_t kMaxVocabSize = std::int64_t(1) << 24;   // 16777216 tokens
constexpr std::int64_t kMaxParameters = std::int64_t(1) << 50;  // 1125899906842624, about 1.1e15
// The most optimizer sub-groups a model may be cut into (zero_optimization.
// sub_group_size): each is a unit of the engine's and the planner's
// bookkeeping; "auto" (at most 16M elements each) stays within it up to kMaxParameters.
constexpr std::int64_t kMaxSubGroups = std::int64_t(1) << 26;

struct ModelSpec {
  std::string name;          // catalogue name, or "custom"
  std::int64_t vocab_size;   // tokens
  std::int64_t seq_len;      // tokens per sample (also the position table size)
  std::int64_t hidden_size;  // model width
  std::int64_t layers;       // transformer blocks
  std::int64_t heads;        // attention heads; hidden_size % heads == 0

  // Parameters of the decoder as zinf builds it: token and position
  // embeddings, per block 2 LayerNorms + QKV + projection + 4x MLP (with
  // biases), a final LayerNorm, and an LM head tied to the token embedding.
  // Throws UsageError naming the dimensions when the count overflows or is
  // above kMaxParameters.
  std::int64_t parameter_count() const;
  // Parameters of one transformer block; throws like parameter_count.
  std::int64_t block_parameter_count() const;
  // Throws UsageError naming the first dimension that is below 1 or above
  // its kMax* bound, e.g. "hidden size 9000000000 is above the largest supported 1048576".
  void check_dimensions() const;
};

// The named sizes, in order of size.
const std::vector<ModelSpec>& model_catalog();

// The spec called `name`, or nullopt.
std::optional<ModelSpec> find_model(const std::string& name);

// "tiny, gpt2-small, ..." for error messages.
std::string model_names();

}  // namespace zinf
