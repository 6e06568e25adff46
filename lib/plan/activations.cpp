// zinf::plan — activation memory (formula and derivation in the header).
#include "plan/activations.h"

namespace zinf::plan {

ActivationBytes activation_bytes(const ActivationInputs& in) {
  const std::int64_t s = in.seq_len, b = in.micro_batch, h = in.model.hidden_size, a = in.model.heads;
  const std::int64_t sbh = s * b * h;
  ActivationBytes out;
  out.per_block = in.attention == Attention::kMaterialized ? in.dtype_bytes * (16 * sbh + a * s * s * b)
                                                           : in.dtype_bytes * 16 * sbh + 4 * a * s * b;
  if (in.checkpointing) {
    out.blocks = in.model.layers * sbh * in.dtype_bytes;
    out.recompute = out.per_block;
  } else {
    out.blocks = in.model.layers * out.per_block;
  }
  const std::int64_t logits = s * b * in.model.vocab_size;
  out.head = 2 * sbh * in.dtype_bytes + logits * (in.dtype_bytes + 4 + 4);
  return out;
}

}  // namespace zinf::plan
