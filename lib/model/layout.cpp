// zinf::model — the flat-buffer layout of the GPT decoder.
#include "model/layout.h"

#include "core/error.h"

namespace zinf::model {
namespace {

void add(BlockLayout& b, std::int64_t& cursor, const std::string& name, std::vector<std::int64_t> shape) {
  ParamInfo p;
  p.name = name;
  p.numel = 1;
  for (auto d : shape) p.numel *= d;
  p.shape = std::move(shape);
  p.offset = cursor;
  cursor += p.numel;
  b.numel += p.numel;
  b.params.push_back(std::move(p));
}

}  // namespace

void check_spec(const ModelSpec& s) {
  auto positive = [](const char* flag, std::int64_t v) {
    if (v < 1) throw UsageError(std::string(flag) + " must be at least 1, got " + std::to_string(v));
  };
  positive("--vocab-size", s.vocab_size);
  positive("--seq-len", s.seq_len);
  positive("--hidden-size", s.hidden_size);
  positive("--layers", s.layers);
  positive("--heads", s.heads);
  if (s.hidden_size % s.heads != 0)
    throw UsageError("--hidden-size " + std::to_string(s.hidden_size) + " is not divisible by --heads " +
                         std::to_string(s.heads),
                     "pick heads that divide the hidden size (head size = hidden_size / heads)");
}

std::vector<BlockLayout> gpt_layout(const ModelSpec& s) {
  check_spec(s);
  const std::int64_t h = s.hidden_size;
  std::vector<BlockLayout> blocks;
  std::int64_t cursor = 0;
  BlockLayout emb{"embedding", cursor, 0, {}};
  add(emb, cursor, "transformer.wte.weight", {s.vocab_size, h});
  add(emb, cursor, "transformer.wpe.weight", {s.seq_len, h});
  blocks.push_back(std::move(emb));
  for (std::int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    BlockLayout b{"block." + std::to_string(i), cursor, 0, {}};
    add(b, cursor, p + "ln_1.weight", {h});
    add(b, cursor, p + "ln_1.bias", {h});
    add(b, cursor, p + "attn.c_attn.weight", {3 * h, h});
    add(b, cursor, p + "attn.c_attn.bias", {3 * h});
    add(b, cursor, p + "attn.c_proj.weight", {h, h});
    add(b, cursor, p + "attn.c_proj.bias", {h});
    add(b, cursor, p + "ln_2.weight", {h});
    add(b, cursor, p + "ln_2.bias", {h});
    add(b, cursor, p + "mlp.c_fc.weight", {4 * h, h});
    add(b, cursor, p + "mlp.c_fc.bias", {4 * h});
    add(b, cursor, p + "mlp.c_proj.weight", {h, 4 * h});
    add(b, cursor, p + "mlp.c_proj.bias", {h});
    blocks.push_back(std::move(b));
  }
  BlockLayout head{"head", cursor, 0, {}};
  add(head, cursor, "transformer.ln_f.weight", {h});
  add(head, cursor, "transformer.ln_f.bias", {h});
  blocks.push_back(std::move(head));
  return blocks;
}

double flops_per_token(const ModelSpec& s) {
  const double matmul_params = double(s.parameter_count() - s.seq_len * s.hidden_size);
  return 6.0 * matmul_params + 12.0 * double(s.layers) * double(s.hidden_size) * double(s.seq_len);
}

}  // namespace zinf::model
