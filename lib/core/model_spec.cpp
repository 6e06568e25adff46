// zinf::core — the catalogue of named model sizes, the checked parameter count and the dimension bounds.
#include "core/model_spec.h"

#include "core/checked.h"
#include "core/error.h"

namespace zinf {

namespace {

CheckedInt block_params(std::int64_t hidden) {
  const CheckedInt h = hidden;
  const CheckedInt layer_norms = 2 * 2 * h;        // ln1, ln2: weight + bias
  const CheckedInt attention = 3 * h * h + 3 * h    // qkv
                               + h * h + h;         // output projection
  const CheckedInt mlp = 4 * h * h + 4 * h          // fc
                         + 4 * h * h + h;           // projection
  return layer_norms + attention + mlp;
}

}  // namespace

std::int64_t ModelSpec::block_parameter_count() const {
  return block_params(hidden_size).get("the parameter count of a block", {{"hidden", hidden_size}});
}

std::int64_t ModelSpec::parameter_count() const {
  const CheckedInt embeddings = CheckedInt(vocab_size) * hidden_size + CheckedInt(seq_len) * hidden_size;
  const CheckedInt final_norm = CheckedInt(2) * hidden_size;
  const CheckedInt total = embeddings + layers * block_params(hidden_size) + final_norm;  // head tied to wte
  const std::string hint = "allowed: hidden size up to " + std::to_string(kMaxHiddenSize) + ", layers up to " +
                           std::to_string(kMaxLayers) + ", at most " + std::to_string(kMaxParameters) +
                           " parameters (2^50)";
  const std::int64_t n = total.get("the parameter count",
                                   {{"hidden", hidden_size}, {"layers", layers}, {"vocab", vocab_size}, {"seq_len", seq_len}},
                                   hint);
  if (n > kMaxParameters)
    throw UsageError("hidden " + std::to_string(hidden_size) + " x layers " + std::to_string(layers) + " (vocab " +
                         std::to_string(vocab_size) + ", seq_len " + std::to_string(seq_len) + ") makes " +
                         std::to_string(n) + " parameters, above the largest supported " +
                         std::to_string(kMaxParameters),
                     hint);
  return n;
}

void ModelSpec::check_dimensions() const {
  const struct {
    const char* what;
    std::int64_t value, max;
  } dims[] = {{"hidden size (--hidden-size)", hidden_size, kMaxHiddenSize},
              {"layers (--layers)", layers, kMaxLayers},
              {"heads (--heads)", heads, kMaxHeads},
              {"sequence length (--seq-len)", seq_len, kMaxSeqLen},
              {"vocabulary size (--vocab-size)", vocab_size, kMaxVocabSize}};
  for (const auto& d : dims) {
    const std::string allowed = "allowed: 1 to " + std::to_string(d.max);
    if (d.value < 1)
      throw UsageError(std::string(d.what) + " is " + std::to_string(d.value) + ": must be at least 1", allowed);
    if (d.value > d.max)
      throw UsageError(std::string(d.what) + " " + std::to_string(d.value) + " is above the largest supported " +
                           std::to_string(d.max),
                       allowed);
  }
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
