// zinf::plan — activation memory (formulas and derivations in the header), in checked arithmetic.
#include "plan/activations.h"

#include "core/checked.h"

namespace zinf::plan {
namespace {

struct PerBlock {
  CheckedInt block = 0;  // one transformer block, bytes
  CheckedInt norm = 0;   // the head's final norm, its output included, bytes
};

PerBlock gpt2(const ActivationInputs& in) {
  const CheckedInt s = in.seq_len, b = in.micro_batch, h = in.model.hidden_size, a = in.model.heads;
  const CheckedInt dt = in.dtype_bytes;
  const CheckedInt sbh = s * b * h;
  PerBlock p;
  p.block = in.attention == Attention::kMaterialized ? dt * (16 * sbh + a * s * s * b) : dt * 16 * sbh + 4 * a * s * b;
  p.norm = 2 * sbh * dt;
  return p;
}

PerBlock llama(const ActivationInputs& in) {
  const ModelSpec& m = in.model;
  const CheckedInt s = in.seq_len, N = s * in.micro_batch, h = m.hidden_size, a = m.heads, d = m.head_size();
  const CheckedInt q = a * d, f = m.ffn_size(), dt = in.dtype_bytes;
  const CheckedInt square = in.mean_keeps_input ? 4 * N * h : CheckedInt(0);
  const CheckedInt rms_norm = 4 * N * h + square + 4 * N + dt * N * h;  // fp32 input, (x^2), row factor, normalised
  const CheckedInt attention = rms_norm + dt * (N * h + 4 * N * q + 2 * s * d) +
                               (in.attention == Attention::kMaterialized ? dt * a * s * N + s * s : 4 * a * N);
  const CheckedInt mlp = rms_norm + dt * (N * h + 4 * N * f);
  PerBlock p;
  p.block = attention + mlp;
  p.norm = rms_norm + dt * N * h;
  return p;
}

}  // namespace

ActivationBytes activation_bytes(const ActivationInputs& in) {
  const CheckedInt s = in.seq_len, b = in.micro_batch, h = in.model.hidden_size;
  const CheckedInt dt = in.dtype_bytes, layers = in.model.layers;
  const PerBlock p = in.model.architecture() == Architecture::kGpt2 ? gpt2(in) : llama(in);
  const CheckedInt blocks = in.checkpointing ? layers * s * b * h * dt : layers * p.block;
  const CheckedInt recompute = in.checkpointing ? p.block : CheckedInt(0);
  const CheckedInt logits = s * b * in.model.vocab_size;
  const CheckedInt head = p.norm + logits * (dt + 4 + 4);
  auto bytes = [&](const CheckedInt& v) {
    return v.get("the activation bytes",
                 {{"seq_len", in.seq_len}, {"micro-batch", in.micro_batch}, {"hidden", in.model.hidden_size},
                  {"heads", in.model.heads}, {"layers", in.model.layers}, {"vocab", in.model.vocab_size},
                  {"MLP width", in.model.ffn_size()}},
                 "use a smaller --batch-size or --seq-len");
  };
  bytes(blocks + recompute + head);  // total() must fit too
  ActivationBytes out;
  out.per_block = bytes(p.block);
  out.blocks = bytes(blocks);
  out.recompute = bytes(recompute);
  out.head = bytes(head);
  return out;
}

}  // namespace zinf::plan
