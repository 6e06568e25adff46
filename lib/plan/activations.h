// zinf::plan — activation memory of zinf's decoders (GPT-2, Llama family).
// Implements: bytes of activations kept for backward per micro-batch, with and
// without activation checkpointing, for materialised attention (softmax
// scores kept, as LibTorch 1.13 on CPU computes it) and fused flash/SDPA
// attention (scores never stored), for the architecture of the ModelSpec.
// Notation: s tokens, b micro-batch, N = s*b, h hidden, a query heads, d head
// size, q = a*d (the query width), f MLP width (intermediate_size), V vocab,
// dt bytes of the activation dtype.
//
// GPT-2 (lib/model/architecture.cpp Gpt2::block), after Korthikanti et al.
// 2022, "Reducing Activation Recomputation in Large Transformer Models",
// section 4.1: with 16-bit activations, dropout and no sequence/tensor
// parallelism a block keeps s*b*h*(34 + 5*a*s/h) bytes. zinf's blocks have
// no dropout, which removes the two s*b*h one-byte masks and the a*s*s*b
// dropout mask and its 2-byte output, leaving, in elements of dt:
//   attention: LN1 in (sbh), QKV in (sbh), Q and K (2sbh), V (sbh),
//              softmax out (a*s*s*b), proj in (sbh)         = 6sbh + a*s*s*b
//   MLP:       LN2 in (sbh), fc in (sbh), GELU in (4sbh), proj in (4sbh) = 10sbh
//   block:     16*s*b*h + a*s*s*b elements
// (left out, under 1% at GPT-2's sizes: LayerNorm's fp32 mean and rstd, 16N
// bytes a block, and the [s, s] bool causal mask).
//
// Llama family (Llama::block; measured tensor by tensor on LibTorch 1.13
// with a counting CPU allocator, exact to the byte but for two int64 index
// vectors of a entries). RMSNorm (rms_norm) computes in fp32 and keeps
//   its input as fp32 (4Nh: x.to(fp32), or x itself when dt = 4), x^2 (4Nh,
//   only where mean() keeps its input: LibTorch 1.13; LibTorch 2's mean
//   backward needs only the shape, measured on the H200: a 1.36B Llama's
//   per-sample activations 5.08 GiB, 5.73 with x^2 counted), the rsqrt row
//   factor (4N) and the normalised value cast back (dt*Nh, kept by the
//   weight multiply) = 4Nh (+ 4Nh) + 4N + dt*Nh bytes; its output is the
//   next matmul's input.
// The block input itself is not kept (only its fp32 copy; with
// checkpointing the block input is counted apart, as for GPT-2). Then, in
// bytes:
//   attention: RMSNorm 1 (see above), q/k/v in (dt*Nh), Q after
//              rotary (dt*Nq), K after rotary and V, each repeated to a heads
//              for grouped-query attention (2*dt*Nq: repeat_interleave
//              copies, so kv_heads do not shrink them), o_proj in (dt*Nq),
//              rotary cos and sin (2*dt*s*d); materialised: softmax out
//              (dt*a*s*s*b) and the causal mask (s*s, bool); flash: no scores,
//              a fp32 log-sum-exp per head and token (4aN), the kernel's output
//              being the o_proj input ([B, T, a, d] already)
//   MLP:       RMSNorm 2 (see above), gate/up in (dt*Nh), gate out =
//              SiLU in, SiLU out, up out, product = down in (4*dt*Nf)
//   block:     8Nh (+ 8Nh) + 8N + dt*(4Nh + 4Nq + 4Nf + 2sd) + scores or log-sum-exp
// q/k/v biases (qwen2) keep nothing more: a linear keeps its input.
//
// Head: the final norm (GPT-2: LayerNorm in and out, 2*dt*Nh; Llama: RMSNorm
// 8Nh + 4N + dt*Nh and its output dt*Nh) and the logits: s*b*V elements,
// their fp32 log-softmax (4 B) and fp32 gradient (4 B) at backward's peak;
// tied or untied alike (a head weight is a parameter, not an activation).
#pragma once

#include <cstdint>

#include "core/model_spec.h"

namespace zinf::plan {

enum class Attention { kMaterialized, kFlash };

struct ActivationInputs {
  ModelSpec model;                 // architecture and shape: h, a, kv heads, head size, MLP width, layers, vocab
  std::int64_t micro_batch = 1;    // samples per rank per forward
  std::int64_t seq_len = 1;        // tokens per sample
  std::int64_t dtype_bytes = 2;    // activation dtype: 2 (bf16/fp16) or 4 (fp32)
  Attention attention = Attention::kFlash;
  bool checkpointing = false;      // keep only each block's input, recompute in backward
  bool mean_keeps_input = false;   // LibTorch 1.13: RMSNorm's mean() keeps x^2 for backward
};

struct ActivationBytes {
  std::int64_t per_block = 0;      // one block without checkpointing, bytes
  std::int64_t blocks = 0;         // what all blocks keep for backward, bytes
  std::int64_t recompute = 0;      // one block rebuilt during backward (checkpointing only), bytes
  std::int64_t head = 0;           // final norm, logits, fp32 log-softmax, logit gradient, bytes
  std::int64_t total() const { return blocks + recompute + head; }
};

// Throws UsageError naming the inputs when a size overflows 64 bits.
ActivationBytes activation_bytes(const ActivationInputs& in);

}  // namespace zinf::plan
