// zinf::core — the catalogue of named model sizes, the checked parameter count and the dimension bounds.
#include "core/model_spec.h"

#include "core/checked.h"
#include "core/error.h"

namespace zinf {

namespace {

CheckedInt gpt2_block_params(const ModelSpec& s) {
  const CheckedInt h = s.hidden_size;
  const CheckedInt f = s.ffn_size();
  const CheckedInt layer_norms = 2 * 2 * h;        // ln1, ln2: weight + bias
  const CheckedInt attention = 3 * h * h + 3 * h    // qkv
                               + h * h + h;         // output projection
  const CheckedInt mlp = h * f + f                  // fc
                         + f * h + h;               // projection
  return layer_norms + attention + mlp;
}

CheckedInt llama_block_params(const ModelSpec& s) {
  const CheckedInt h = s.hidden_size;
  const CheckedInt q = CheckedInt(s.heads) * s.head_size();
  const CheckedInt kv = CheckedInt(s.kv_head_count()) * s.head_size();
  const CheckedInt f = s.ffn_size();
  const CheckedInt norms = 2 * h;                               // input and post-attention RMSNorm
  CheckedInt attention = h * q + 2 * (h * kv) + q * h;          // q, k, v, o
  if (s.attention_bias) attention = attention + q + 2 * kv;     // qwen2: q/k/v biases
  const CheckedInt mlp = 3 * (h * f);                           // gate, up, down
  return norms + attention + mlp;
}

CheckedInt block_params(const ModelSpec& s) {
  return s.architecture() == Architecture::kGpt2 ? gpt2_block_params(s) : llama_block_params(s);
}

// The engine's "embedding" block: GPT-2's token and position tables, Llama's token table.
CheckedInt embedding_params(const ModelSpec& s) {
  const CheckedInt token_embedding = CheckedInt(s.vocab_size) * s.hidden_size;
  if (s.architecture() == Architecture::kGpt2) return token_embedding + CheckedInt(s.position_count()) * s.hidden_size;
  return token_embedding;
}

// The engine's "head" block: the final norm (GPT-2's LayerNorm weight and
// bias, Llama's RMSNorm weight) and an untied LM head; a tied head is the embedding.
CheckedInt head_params(const ModelSpec& s) {
  if (s.architecture() == Architecture::kGpt2) return CheckedInt(2) * s.hidden_size;
  const CheckedInt lm_head = s.head_is_embedding() ? CheckedInt(0) : CheckedInt(s.vocab_size) * s.hidden_size;
  return CheckedInt(s.hidden_size) + lm_head;
}

CheckedInt outside_block_params(const ModelSpec& s) { return embedding_params(s) + head_params(s); }

}  // namespace

Architecture ModelSpec::architecture() const {
  if (model_type == "gpt2") return Architecture::kGpt2;
  if (model_type == "llama" || model_type == "mistral" || model_type == "qwen2") return Architecture::kLlama;
  throw UsageError("model_type '" + model_type + "' is not supported", "supported: gpt2, llama, mistral, qwen2");
}

std::int64_t ModelSpec::block_parameter_count() const {
  return block_params(*this).get("the parameter count of a block", {{"hidden", hidden_size}});
}

std::int64_t ModelSpec::embedding_parameter_count() const {
  return embedding_params(*this).get("the parameter count of the embedding",
                                     {{"hidden", hidden_size}, {"vocab", vocab_size}, {"positions", position_count()}});
}

std::int64_t ModelSpec::head_parameter_count() const {
  return head_params(*this).get("the parameter count of the head", {{"hidden", hidden_size}, {"vocab", vocab_size}});
}

std::int64_t ModelSpec::parameter_count() const {
  const CheckedInt total = outside_block_params(*this) + layers * block_params(*this);
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
  const struct {
    const char* what;
    std::int64_t value, max;
  } optional_dims[] = {{"key/value heads (--kv-heads)", kv_heads, kMaxHeads},
                       {"MLP width (--intermediate-size)", intermediate_size, kMaxHiddenSize * 8},
                       {"head size (zinf.model.head_dim)", head_dim, kMaxHiddenSize},
                       {"position table (max_position_embeddings)", max_positions, kMaxSeqLen}};
  for (const auto& d : optional_dims) {  // 0 means "the default"
    if (d.value < 0)
      throw UsageError(std::string(d.what) + " is " + std::to_string(d.value) + ": must be at least 1 (0: the default)",
                       "allowed: 1 to " + std::to_string(d.max));
    if (d.value > d.max)
      throw UsageError(std::string(d.what) + " " + std::to_string(d.value) + " is above the largest supported " +
                           std::to_string(d.max),
                       "allowed: 1 to " + std::to_string(d.max));
  }
  const Architecture arch = architecture();
  if (kv_head_count() > heads || heads % kv_head_count() != 0)
    throw UsageError("key/value heads " + std::to_string(kv_head_count()) + " do not divide the " +
                         std::to_string(heads) + " attention heads",
                     "grouped-query attention shares each key/value head among heads / kv_heads query heads");
  if (head_dim == 0 && hidden_size % heads != 0)
    throw UsageError("hidden size " + std::to_string(hidden_size) + " is not divisible by heads " +
                         std::to_string(heads),
                     "pick heads that divide the hidden size (head size = hidden_size / heads), or set head_dim");
  if (arch == Architecture::kGpt2) {
    if (kv_head_count() != heads || (head_dim != 0 && head_dim * heads != hidden_size))
      throw UsageError("gpt2 has no grouped-query attention and head size = hidden_size / heads",
                       "use model_type llama, mistral or qwen2 for kv_heads or head_dim");
  } else {
    if (head_size() % 2 != 0)
      throw UsageError("head size " + std::to_string(head_size()) + " is odd: rotary embeddings rotate pairs",
                       "pick an even head size");
    if (rope_theta <= 0)
      throw UsageError("rope_theta " + std::to_string(rope_theta) + " must be positive");
    if (rope_scaling.type != "none" && rope_scaling.type != "linear" && rope_scaling.type != "llama3")
      throw UsageError("rope_scaling type '" + rope_scaling.type + "' is not supported",
                       "supported: none, linear, llama3");
    if (rope_scaling.type != "none" && !(rope_scaling.factor > 0))
      throw UsageError("rope_scaling factor must be positive");
  }
  if (!(norm_eps > 0)) throw UsageError("norm epsilon must be positive");
  if (seq_len > position_count())
    throw UsageError("sequence length " + std::to_string(seq_len) + " is above the model's " +
                         std::to_string(position_count()) + " positions (max_position_embeddings)",
                     "use --seq-len " + std::to_string(position_count()) + " or less");
}

namespace {

// A Llama-family shape as its Hugging Face config.json gives it.
ModelSpec llama_shape(const char* name, std::int64_t vocab, std::int64_t hidden, std::int64_t layers,
                      std::int64_t heads, std::int64_t kv_heads, std::int64_t ffn, double rope_theta,
                      std::int64_t max_positions, bool tied) {
  ModelSpec m{name, vocab, 2048, hidden, layers, heads};
  m.model_type = "llama";
  m.kv_heads = kv_heads;
  m.intermediate_size = ffn;
  m.rope_theta = rope_theta;
  m.max_positions = max_positions;
  m.tied_embeddings = tied;
  return m;
}

}  // namespace

const std::vector<ModelSpec>& model_catalog() {
  // GPT-2 sizes use GPT-2's vocabulary padded to a multiple of 64 (50304), as
  // nanoGPT/llm.c do; the larger ones follow GPT-3's shapes (Brown et al. 2020).
  // The Llama entries are the shapes of Llama-3.2-1B, Llama-3.1-8B and
  // Llama-2-7B (for zinf estimate and runs from random weights; rope_scaling
  // none: fine-tune the real checkpoints with --from-pretrained).
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
      llama_shape("llama3-1b", 128256, 2048, 16, 32, 8, 8192, 500000.0, 131072, true),
      llama_shape("llama3-8b", 128256, 4096, 32, 32, 8, 14336, 500000.0, 131072, false),
      llama_shape("llama2-7b", 32000, 4096, 32, 32, 0, 11008, 10000.0, 4096, false),
  };
  return catalog;
}

std::optional<ModelSpec> find_model(const std::string& name) {
  for (const auto& spec : model_catalog())
    if (spec.name == name) return spec;
  return std::nullopt;
}

std::vector<std::string> model_name_list() {
  std::vector<std::string> names;
  for (const auto& spec : model_catalog()) names.push_back(spec.name);
  return names;
}

std::string model_names() {
  std::string names;
  for (const auto& spec : model_catalog()) names += (names.empty() ? "" : ", ") + spec.name;
  return names;
}

}  // namespace zinf
