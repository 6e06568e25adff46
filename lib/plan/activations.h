// zinf::plan — activation memory of zinf's GPT decoder.
// Implements: bytes of activations kept for backward per micro-batch, with and
// without activation checkpointing, for materialised attention (softmax
// scores kept, as LibTorch 1.13 on CPU computes it) and fused flash/SDPA
// attention (scores never stored). Derivation, per transformer block, after
// Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
// Transformer Models", section 4.1: with 16-bit activations, dropout and no
// sequence/tensor parallelism a block keeps s*b*h*(34 + 5*a*s/h) bytes
// (s tokens, b micro-batch, h hidden, a heads). zinf's blocks have no dropout,
// which removes the two s*b*h one-byte masks and the a*s*s*b dropout mask and
// its 2-byte output, leaving, in elements of the activation dtype:
//   attention: LN1 in (sbh), QKV in (sbh), Q and K (2sbh), V (sbh),
//              softmax out (a*s*s*b), proj in (sbh)         = 6sbh + a*s*s*b
//   MLP:       LN2 in (sbh), fc in (sbh), GELU in (4sbh), proj in (4sbh) = 10sbh
//   block:     16*s*b*h + a*s*s*b elements
// Flash/SDPA attention keeps the output and a fp32 log-sum-exp per row
// (4*a*s*b bytes) instead of the a*s*s*b scores. The LM head's logits add
// s*b*V elements, their fp32 log-softmax (4 B) and fp32 gradient (4 B).
#pragma once

#include <cstdint>

#include "core/model_spec.h"

namespace zinf::plan {

enum class Attention { kMaterialized, kFlash };

struct ActivationInputs {
  ModelSpec model;                 // h, a, layers, vocab
  std::int64_t micro_batch = 1;    // samples per rank per forward
  std::int64_t seq_len = 1;        // tokens per sample
  std::int64_t dtype_bytes = 2;    // activation dtype: 2 (bf16/fp16) or 4 (fp32)
  Attention attention = Attention::kFlash;
  bool checkpointing = false;      // keep only each block's input, recompute in backward
};

struct ActivationBytes {
  std::int64_t per_block = 0;      // one block without checkpointing, bytes
  std::int64_t blocks = 0;         // what all blocks keep for backward, bytes
  std::int64_t recompute = 0;      // one block rebuilt during backward (checkpointing only), bytes
  std::int64_t head = 0;           // final LayerNorm in/out, logits, fp32 log-softmax, logit gradient, bytes
  std::int64_t total() const { return blocks + recompute + head; }
};

// Throws UsageError naming the inputs when a size overflows 64 bits.
ActivationBytes activation_bytes(const ActivationInputs& in);

}  // namespace zinf::plan
