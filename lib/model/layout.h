// zinf::model — where every parameter lives in the flat buffer.
// Implements: model_layout(), the model of either architecture as a list of
// blocks the engine can gather one at a time — "embedding", "block.0" ...
// "block.N-1", "head" (GPT-2: wte + wpe, ln_f with the LM head tied to wte;
// Llama family: embed_tokens, model.norm and lm_head unless tied; the blocks
// as model_layout's comment below lists) — and for each block its
// parameters' Hugging Face names, shapes and offsets. Blocks are contiguous
// and in order, so block b's parameters are flat[offset, offset + numel);
// no_decay_ranges(), the elements weight decay leaves alone (norms, biases,
// embeddings). No tensors here: the dense model (model/gpt), the engine
// binding (train/zero_gpt), the pretrained reader and the export read it;
// the planner (lib/plan, which may not depend on model) sizes the same
// blocks from the ModelSpec alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/flat_state.h"
#include "core/model_spec.h"

namespace zinf::model {

struct ParamInfo {
  std::string name;                 // "transformer.h.0.attn.c_attn.weight"
  std::vector<std::int64_t> shape;  // [out, in] for linear weights
  std::int64_t offset = 0;          // elements from the start of the flat buffer
  std::int64_t numel = 0;           // elements
};

struct BlockLayout {
  std::string name;                 // "embedding", "block.3", "head"
  std::int64_t offset = 0;          // elements from the start of the flat buffer
  std::int64_t numel = 0;           // elements
  std::vector<ParamInfo> params;    // in flat-buffer order
};

// The layout of `spec`'s decoder for its architecture; the last block's
// offset + numel equals spec.parameter_count(). Throws UsageError for
// impossible shapes. GPT-2: embedding = wte, wpe; head = ln_f (tied to wte).
// Llama family: embedding = model.embed_tokens; block i = model.layers.i.
// {input_layernorm, q/k/v (+ biases when attention_bias), o_proj,
// post_attention_layernorm, gate, up, down}; head = model.norm (+ lm_head
// unless tied). Hugging Face orientation [out, in].
std::vector<BlockLayout> model_layout(const ModelSpec& spec);

// The elements of the flat vector that take no weight decay in zinf's
// recipe: every parameter with fewer than two dimensions (norm weights,
// every bias) and the whole embedding block (GPT-2 wte and wpe, Llama
// embed_tokens; a tied LM head is the embedding). What decays is the 2-D
// weight matrices of the transformer blocks and an untied lm_head. Sorted,
// disjoint, neighbours merged: a handful of ranges per block.
std::vector<FlatRange> no_decay_ranges(const std::vector<BlockLayout>& layout);

// Checks a spec's dimensions (positive, hidden_size divisible by heads).
void check_spec(const ModelSpec& spec);

// Index of each parameter kind inside a transformer block's parameter list.
enum BlockParam : int {
  kLn1Weight, kLn1Bias, kQkvWeight, kQkvBias, kAttnProjWeight, kAttnProjBias,
  kLn2Weight, kLn2Bias, kFcWeight, kFcBias, kMlpProjWeight, kMlpProjBias, kBlockParamCount
};

// Model FLOPs per trained token (forward + backward, no recompute):
// 6 * (parameters in matmuls: all but wpe, the tied head counted once)
// + 12 * layers * hidden_size * seq_len (attention scores and values, PaLM's
// formula, causal mask not discounted).
double flops_per_token(const ModelSpec& spec);

}  // namespace zinf::model
