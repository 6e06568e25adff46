// zinf::plan — activation memory (formula and derivation in the header), in checked arithmetic.
#include "plan/activations.h"

#include "core/checked.h"

namespace zinf::plan {

ActivationBytes activation_bytes(const ActivationInputs& in) {
  const CheckedInt s = in.seq_len, b = in.micro_batch, h = in.model.hidden_size, a = in.model.heads;
  const CheckedInt dt = in.dtype_bytes, layers = in.model.layers;
  const CheckedInt sbh = s * b * h;
  const CheckedInt per_block = in.attention == Attention::kMaterialized ? dt * (16 * sbh + a * s * s * b)
                                                                        : dt * 16 * sbh + 4 * a * s * b;
  const CheckedInt blocks = in.checkpointing ? layers * sbh * dt : layers * per_block;
  const CheckedInt recompute = in.checkpointing ? per_block : CheckedInt(0);
  const CheckedInt logits = s * b * in.model.vocab_size;
  const CheckedInt head = 2 * sbh * dt + logits * (dt + 4 + 4);
  auto bytes = [&](const CheckedInt& v) {
    return v.get("the activation bytes",
                 {{"seq_len", in.seq_len}, {"micro-batch", in.micro_batch}, {"hidden", in.model.hidden_size},
                  {"heads", in.model.heads}, {"layers", in.model.layers}, {"vocab", in.model.vocab_size}},
                 "use a smaller --batch-size or --seq-len");
  };
  bytes(blocks + recompute + head);  // total() must fit too
  ActivationBytes out;
  out.per_block = bytes(per_block);
  out.blocks = bytes(blocks);
  out.recompute = bytes(recompute);
  out.head = bytes(head);
  return out;
}

}  // namespace zinf::plan
