// zinf::model — decoder architectures as data the engine runs block by block.
// Implements: Architecture, the computation of each block kind of a decoder
// (embedding, transformer block, head) over the parameter views of
// model_layout(spec), and its from-scratch initialisation; architecture_of()
// picks GPT-2 or the Llama family (llama, mistral, qwen2) once from
// spec.architecture(). The dense Gpt and the ZeRO-3 binding (train/zero_gpt)
// call through it and never branch on model_type.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/model_spec.h"

namespace zinf::model {

using Params = std::vector<torch::Tensor>;

// One transformer block's keys and values of the positions seen so far, for
// generation: [B, kv_heads, positions, head_size] each, undefined before the
// first call. A block given a cache attends over it plus the new tokens
// (positions length() ..) and appends their keys and values.
struct KvCache {
  torch::Tensor k, v;
  std::int64_t length() const { return k.defined() ? k.size(2) : 0; }
};

// Rows that hold several documents (zinf.data.windows = packed): each
// token's position within its own document and which keys each query may
// see (the earlier tokens of its document), made once per forward and read
// by every block. Without one, token t of a row sits at position t and sees
// tokens 0..t of the row.
struct Packing {
  torch::Tensor positions;  // [B, T] int64
  torch::Tensor allowed;    // [B, 1, T, T] bool, true where query t may attend to key u
  // `allowed` as SDPA's additive mask (0 / -inf) in the activations' dtype,
  // made on first use and shared by every block: given a boolean mask, SDPA
  // makes (and the memory-efficient kernel keeps for backward) a float copy
  // per call, B x T x T x 2 bytes a block.
  mutable torch::Tensor bias;
};
// From positions [B, T] int64 (0 where a document starts, then counting up),
// on their device.
Packing packing_from_positions(const torch::Tensor& positions);
// The same for a forward, shared by its blocks (their recompute closures keep
// it until backward); null when `positions` is undefined (rows not packed).
std::shared_ptr<const Packing> forward_packing(const torch::Tensor& positions);

class Architecture {
 public:
  virtual ~Architecture() = default;
  // idx [B, T] int64 at positions first_position.. (or packing->positions)
  // -> x [B, T, H]; emb: the "embedding" block's views.
  virtual torch::Tensor embed(const torch::Tensor& idx, const Params& emb, const ModelSpec& spec,
                              std::int64_t first_position = 0, const Packing* packing = nullptr) const = 0;
  // One transformer block (x [B, T, H]); p: a block's views. Without a cache
  // the positions are 0..T-1 (or packing's); with one, cache->length()..
  // (see KvCache). A cache and a packing do not go together.
  virtual torch::Tensor block(const torch::Tensor& x, const Params& p, const ModelSpec& spec,
                              KvCache* cache = nullptr, const Packing* packing = nullptr) const = 0;
  // x [B, T, H] -> logits [B, T, vocab]; head: the "head" block's views, emb:
  // the embedding block's (read only when head_reads_embedding(spec)).
  virtual torch::Tensor head(const torch::Tensor& x, const Params& head, const Params& emb,
                             const ModelSpec& spec) const = 0;
  // Whether the LM head is the token embedding (the head needs block 0 too).
  virtual bool head_reads_embedding(const ModelSpec& spec) const = 0;
  // From-scratch initial value of one parameter (v: its fp32 view, zeroed).
  virtual void init_param(const std::string& name, torch::Tensor& v, const ModelSpec& spec, at::Generator& gen) const = 0;
};

// GPT-2 or Llama, by spec.architecture() (UsageError for an unknown model_type).
const Architecture& architecture_of(const ModelSpec& spec);

// Deterministic per-block initial weights of model_layout(spec)[block] into
// dst ([block numel] fp32): each block draws from its own generator (seeded
// by seed and the block index), so a block can be made alone, in any order.
void initial_block(const ModelSpec& spec, std::uint64_t seed, std::size_t block, float* dst);

// HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) in fp32, cast back, * weight.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
// Rotary inverse frequencies [head_size/2] (fp32) with rope_scaling applied
// as Hugging Face's _compute_default / linear / llama3 rope parameters.
torch::Tensor rope_inv_freq(const ModelSpec& spec);

}  // namespace zinf::model
