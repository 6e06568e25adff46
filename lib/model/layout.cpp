// zinf::model — the flat-buffer layout of each decoder architecture (GPT-2, Llama family).
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
  if (s.architecture() == Architecture::kLlama) {
    if (s.heads % s.kv_head_count() != 0)
      throw UsageError("--heads " + std::to_string(s.heads) + " is not a multiple of --kv-heads " +
                           std::to_string(s.kv_head_count()),
                       "grouped-query attention shares each key/value head among heads / kv_heads query heads");
    if (s.head_dim == 0 && s.hidden_size % s.heads != 0)
      throw UsageError("--hidden-size " + std::to_string(s.hidden_size) + " is not divisible by --heads " +
                           std::to_string(s.heads),
                       "pick heads that divide the hidden size, or set zinf.model.head_dim");
    return;
  }
  if (s.hidden_size % s.heads != 0)
    throw UsageError("--hidden-size " + std::to_string(s.hidden_size) + " is not divisible by --heads " +
                         std::to_string(s.heads),
                     "pick heads that divide the hidden size (head size = hidden_size / heads)");
}

namespace {

std::vector<BlockLayout> llama_layout(const ModelSpec& s) {
  const std::int64_t h = s.hidden_size, q = s.heads * s.head_size(), kv = s.kv_head_count() * s.head_size();
  const std::int64_t f = s.ffn_size();
  std::vector<BlockLayout> blocks;
  std::int64_t cursor = 0;
  BlockLayout emb{"embedding", cursor, 0, {}};
  add(emb, cursor, "model.embed_tokens.weight", {s.vocab_size, h});
  blocks.push_back(std::move(emb));
  for (std::int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    BlockLayout b{"block." + std::to_string(i), cursor, 0, {}};
    add(b, cursor, p + "input_layernorm.weight", {h});
    add(b, cursor, p + "self_attn.q_proj.weight", {q, h});
    if (s.attention_bias) add(b, cursor, p + "self_attn.q_proj.bias", {q});
    add(b, cursor, p + "self_attn.k_proj.weight", {kv, h});
    if (s.attention_bias) add(b, cursor, p + "self_attn.k_proj.bias", {kv});
    add(b, cursor, p + "self_attn.v_proj.weight", {kv, h});
    if (s.attention_bias) add(b, cursor, p + "self_attn.v_proj.bias", {kv});
    add(b, cursor, p + "self_attn.o_proj.weight", {h, q});
    add(b, cursor, p + "post_attention_layernorm.weight", {h});
    add(b, cursor, p + "mlp.gate_proj.weight", {f, h});
    add(b, cursor, p + "mlp.up_proj.weight", {f, h});
    add(b, cursor, p + "mlp.down_proj.weight", {h, f});
    blocks.push_back(std::move(b));
  }
  BlockLayout head{"head", cursor, 0, {}};
  add(head, cursor, "model.norm.weight", {h});
  if (!s.tied_embeddings) add(head, cursor, "lm_head.weight", {s.vocab_size, h});
  blocks.push_back(std::move(head));
  return blocks;
}

std::vector<BlockLayout> gpt2_layout(const ModelSpec& s) {
  const std::int64_t h = s.hidden_size;
  std::vector<BlockLayout> blocks;
  std::int64_t cursor = 0;
  BlockLayout emb{"embedding", cursor, 0, {}};
  add(emb, cursor, "transformer.wte.weight", {s.vocab_size, h});
  add(emb, cursor, "transformer.wpe.weight", {s.position_count(), h});
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

}  // namespace

std::vector<BlockLayout> model_layout(const ModelSpec& s) {
  check_spec(s);
  return s.architecture() == Architecture::kGpt2 ? gpt2_layout(s) : llama_layout(s);
}

std::vector<FlatRange> no_decay_ranges(const std::vector<BlockLayout>& layout) {
  std::vector<FlatRange> out;
  for (const auto& block : layout) {
    for (const auto& p : block.params) {
      if (block.name != "embedding" && p.shape.size() >= 2) continue;  // a matrix: it decays
      if (!out.empty() && out.back().end() == p.offset) out.back().count += p.numel;
      else out.push_back({p.offset, p.numel});
    }
  }
  return out;
}

double flops_per_token(const ModelSpec& s) {
  // GPT-2: all but wpe (the tied head counted once); Llama: no position
  // table, an untied head is a matmul like any other.
  const std::int64_t positions = s.architecture() == Architecture::kGpt2 ? s.position_count() * s.hidden_size : 0;
  const double matmul_params = double(s.parameter_count() - positions);
  return 6.0 * matmul_params + 12.0 * double(s.layers) * double(s.hidden_size) * double(s.seq_len);
}

}  // namespace zinf::model
