// zinf::core — model shapes.
// Implements: ModelSpec, the dimensions of a GPT-style decoder, the catalogue
// of named sizes (tiny ... 13b) and the parameter count formula. It lives in
// core because config (resolution), plan (estimates) and model (building) all
// speak it; it knows nothing about tensors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace zinf {

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
  std::int64_t parameter_count() const;
  // Parameters of one transformer block.
  std::int64_t block_parameter_count() const;
};

// The named sizes, in order of size.
const std::vector<ModelSpec>& model_catalog();

// The spec called `name`, or nullopt.
std::optional<ModelSpec> find_model(const std::string& name);

// "tiny, gpt2-small, ..." for error messages.
std::string model_names();

}  // namespace zinf
