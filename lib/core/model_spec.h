// zinf::core — model shapes.
// Implements: ModelSpec, the architecture and dimensions of a decoder (GPT-2,
// or the Llama family: llama, mistral, qwen2), the largest
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

// The decoder families zinf builds. GPT-2: learned positions, LayerNorm with
// bias, fused QKV with biases, GELU(tanh) MLP of 4x width, head tied to the
// token embedding. Llama family (model_type llama, mistral, qwen2): RMSNorm,
// rotary positions, grouped-query attention, SwiGLU MLP, no biases except
// qwen2's q/k/v, tied or untied head.
enum class Architecture { kGpt2, kLlama };

// Hugging Face's rope_scaling: none, "linear" (positions divided by factor) or
// "llama3" (Llama 3.1's frequency-dependent wavelength scaling).
struct RopeScaling {
  std::string type = "none";               // none | linear | llama3
  double factor = 1.0;
  double low_freq_factor = 1.0;            // llama3 only
  double high_freq_factor = 4.0;           // llama3 only
  std::int64_t original_max_position = 8192;  // llama3: original_max_position_embeddings
};

struct ModelSpec {
  std::string name;          // catalogue name, or "custom"
  std::int64_t vocab_size;   // tokens
  std::int64_t seq_len;      // tokens per training sample
  std::int64_t hidden_size;  // model width
  std::int64_t layers;       // transformer blocks
  std::int64_t heads;        // attention (query) heads

  // Architecture; the defaults make {name, vocab, seq, hidden, layers, heads}
  // the GPT-2 decoder zinf has always built.
  std::string model_type = "gpt2";     // gpt2 | llama | mistral | qwen2 (HF config.json's model_type)
  std::int64_t kv_heads = 0;           // key/value heads (GQA); 0: = heads
  std::int64_t intermediate_size = 0;  // MLP width; 0: 4 * hidden_size
  std::int64_t head_dim = 0;           // 0: hidden_size / heads
  std::int64_t max_positions = 0;      // position table (gpt2 n_positions) / rope max; 0: = seq_len
  double norm_eps = 1e-5;              // LayerNorm / RMSNorm epsilon
  double rope_theta = 10000.0;         // Llama family
  RopeScaling rope_scaling;            // Llama family
  bool tied_embeddings = true;         // LM head shares the token embedding
  bool attention_bias = false;         // q/k/v biases (qwen2); gpt2 always has biases
  std::int64_t bos_token_id = -1;      // -1: none (from HF config.json; used by data and generate)
  std::int64_t eos_token_id = -1;
  // Mistral's sliding attention window (0: none). zinf attends fully, which
  // equals it for sequences of at most this many tokens: config refuses a
  // longer seq_len, and the HF export writes it back.
  std::int64_t sliding_window = 0;

  Architecture architecture() const;  // from model_type; UsageError listing gpt2, llama, mistral, qwen2
  std::int64_t kv_head_count() const { return kv_heads > 0 ? kv_heads : heads; }
  std::int64_t head_size() const { return head_dim > 0 ? head_dim : (heads > 0 ? hidden_size / heads : 0); }
  std::int64_t ffn_size() const { return intermediate_size > 0 ? intermediate_size : 4 * hidden_size; }
  std::int64_t position_count() const { return max_positions > 0 ? max_positions : seq_len; }
  // Whether the LM head is the token embedding (GPT-2 always; Llama when tied).
  bool head_is_embedding() const { return model_type == "gpt2" || tied_embeddings; }

  // Parameters of the decoder as zinf builds it for its architecture (GPT-2:
  // token and position embeddings, per block 2 LayerNorms + QKV + projection
  // + MLP with biases, a final LayerNorm, the head tied to the token
  // embedding; Llama: token embedding, per block 2 RMSNorms + q, k, v, o +
  // gate, up, down, a final RMSNorm, and an LM head unless tied).
  // Throws UsageError naming the dimensions when the count overflows or is
  // above kMaxParameters.
  std::int64_t parameter_count() const;
  // Parameters of one transformer block; throws like parameter_count.
  std::int64_t block_parameter_count() const;
  // Parameters of the blocks around the transformer blocks, as model_layout
  // cuts them: the embedding (GPT-2 wte + wpe, Llama embed_tokens) and the
  // head (the final norm, plus lm_head when untied). Throw like parameter_count.
  std::int64_t embedding_parameter_count() const;
  std::int64_t head_parameter_count() const;
  // Throws UsageError naming the first dimension that is below 1 or above
  // its kMax* bound, e.g. "hidden size 9000000000 is above the largest supported 1048576",
  // or an architecture field that does not fit (heads not a multiple of kv_heads, ...).
  void check_dimensions() const;
};

// The named sizes, in order of size.
const std::vector<ModelSpec>& model_catalog();

// The spec called `name`, or nullopt.
std::optional<ModelSpec> find_model(const std::string& name);

// "tiny, gpt2-small, ..." for error messages.
std::string model_names();
// The catalogue's names, in order.
std::vector<std::string> model_name_list();

}  // namespace zinf
