// zinf::core — the catalogue of named model sizes.
#include "core/model_spec.h"

namespace zinf {

std::int64_t ModelSpec::block_parameter_count() const {
  const std::int64_t h = hidden_size;
  const std::int64_t layer_norms = 2 * 2 * h;        // ln1, ln2: weight + bias
  const std::int64_t attention = 3 * h * h + 3 * h    // qkv
                                 + h * h + h;         // output projection
  const std::int64_t mlp = 4 * h * h + 4 * h          // fc
                           + 4 * h * h + h;           // projection
  return layer_norms + attention + mlp;
}

std::int64_t ModelSpec::parameter_count() const {
  const std::int64_t embeddings = vocab_size * hidden_size + seq_len * hidden_size;
  const std::int64_t final_norm = 2 * hidden_size;
  return embeddings + layers * block_parameter_count() + final_norm;  // head tied to wte
}

const std::vector<ModelSpec>& model_catalog() {
  // GPT-2 sizes use GPT-2's vocabulary padded to a multiple of 64 (50304), as
  // nanoGPT/llm.c do; the larger ones follow GPT-3's shapes (Brown et al. 2020).
  static const std::vector<ModelSpec> catalog = {
      {"tiny", 256, 128, 128, 4, 4},
      {"gpt2-small", 50304, 1024, 768, 12, 12},
      {"gpt2-medium", 50304, 1024, 1024, 24, 16},
      {"gpt2-large", 50304, 1024, 1280, 36, 20},
      {"gpt2-xl", 50304, 1024, 1600, 48, 25},
      {"1b", 50304, 2048, 2048, 18, 16},
      {"2.7b", 50304, 2048, 2560, 32, 32},
      {"6.7b", 50304, 2048, 4096, 32, 32},
      {"13b", 50304, 2048, 5120, 40, 40},
  };
  return catalog;
}

std::optional<ModelSpec> find_model(const std::string& name) {
  for (const auto& spec : model_catalog())
    if (spec.name == name) return spec;
  return std::nullopt;
}

std::string model_names() {
  std::string names;
  for (const auto& spec : model_catalog()) names += (names.empty() ? "" : ", ") + spec.name;
  return names;
}

}  // namespace zinf
