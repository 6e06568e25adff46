// zinf::model — the GPT-2 and Llama-family block computations and initialisation.
#include "model/architecture.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <utility>

#include "core/error.h"
#include "core/torch_compat.h"
#include "model/gpt.h"
#include "model/layout.h"

namespace zinf::model {
namespace {

bool ends_with(const std::string& s, const char* tail) {
  const std::size_t n = std::strlen(tail);
  return s.size() >= n && s.compare(s.size() - n, n, tail) == 0;
}

// Causal softmax attention of q [B, nh, T, hd] over k/v [B, nh, S, hd],
// S >= T: query i sits at position S - T + i and sees keys 0..S - T + i;
// with a packing (S == T), only packing->allowed's keys (its own document's).
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const Packing* packing = nullptr) {
  const std::int64_t T = q.size(2), S = k.size(2), hd = q.size(3);
#if TORCH_VERSION_MAJOR >= 2
  // A mask leaves flash attention out; CUDA runs the memory-efficient kernel.
  if (packing) {
    if (!packing->bias.defined() || packing->bias.scalar_type() != q.scalar_type())
      packing->bias = torch::zeros(packing->allowed.sizes(), q.options())
                          .masked_fill(packing->allowed.logical_not(), -std::numeric_limits<float>::infinity());
    return at::scaled_dot_product_attention(q, k, v, packing->bias);
  }
  if (S == T) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  if (T == 1) return at::scaled_dot_product_attention(q, k, v);  // the newest token sees them all
#endif
  torch::Tensor att = at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(hd)));
  const torch::Tensor hidden =
      packing ? packing->allowed.logical_not()
              : torch::ones({T, S}, torch::TensorOptions().dtype(torch::kBool).device(q.device())).triu(S - T + 1);
  att = att.masked_fill(hidden, -std::numeric_limits<float>::infinity()).softmax(-1);
  return at::matmul(att, v);
}

// k, v [B, nkv, T, hd] appended to the cache; returns everything it holds.
std::pair<torch::Tensor, torch::Tensor> remember(KvCache* cache, torch::Tensor k, torch::Tensor v) {
  if (!cache) return {std::move(k), std::move(v)};
  if (cache->k.defined()) {
    cache->k = torch::cat({cache->k, k}, 2);
    cache->v = torch::cat({cache->v, v}, 2);
  } else {
    cache->k = k;
    cache->v = v;
  }
  return {cache->k, cache->v};
}

// ------------------------------------------------------------------ GPT-2

class Gpt2 final : public Architecture {
 public:
  torch::Tensor embed(const torch::Tensor& idx, const Params& p, const ModelSpec&, std::int64_t first,
                      const Packing* packing) const override {
    if (packing) return at::embedding(p[0], idx) + at::embedding(p[1], packing->positions);
    return at::embedding(p[0], idx) + p[1].narrow(0, first, idx.size(1));
  }
  // HF GPT2Block: pre-LayerNorm, fused QKV, tanh-GELU MLP of 4x width.
  torch::Tensor block(const torch::Tensor& x, const Params& p, const ModelSpec& spec, KvCache* cache,
                      const Packing* packing) const override {
    const std::int64_t B = x.size(0), T = x.size(1), H = x.size(2), nh = spec.heads, hd = H / nh;
    torch::Tensor h = at::layer_norm(x, {H}, p[kLn1Weight], p[kLn1Bias], 1e-5);
    const auto qkv = at::linear(h, p[kQkvWeight], p[kQkvBias]).split(H, 2);
    const torch::Tensor q = qkv[0].view({B, T, nh, hd}).transpose(1, 2);
    const auto [k, v] = remember(cache, qkv[1].view({B, T, nh, hd}).transpose(1, 2), qkv[2].view({B, T, nh, hd}).transpose(1, 2));
    const torch::Tensor y = causal_attention(q, k, v, packing).transpose(1, 2).contiguous().view({B, T, H});
    const torch::Tensor out = x + at::linear(y, p[kAttnProjWeight], p[kAttnProjBias]);
    h = at::layer_norm(out, {H}, p[kLn2Weight], p[kLn2Bias], 1e-5);
    h = at::gelu(at::linear(h, p[kFcWeight], p[kFcBias]), "tanh");
    return out + at::linear(h, p[kMlpProjWeight], p[kMlpProjBias]);
  }
  torch::Tensor head(const torch::Tensor& x, const Params& head, const Params& emb, const ModelSpec& spec) const override {
    return at::linear(at::layer_norm(x, {spec.hidden_size}, head[0], head[1], 1e-5), emb[0]);  // tied to wte
  }
  bool head_reads_embedding(const ModelSpec&) const override { return true; }
  void init_param(const std::string& name, torch::Tensor& v, const ModelSpec& spec, at::Generator& gen) const override {
    const bool is_weight = ends_with(name, ".weight");
    if (name.find("ln_") != std::string::npos) {
      if (is_weight) v.fill_(1.0);
    } else if (is_weight) {
      const bool residual = name.find("c_proj.weight") != std::string::npos;
      v.normal_(0.0, residual ? 0.02 / std::sqrt(2.0 * double(spec.layers)) : 0.02, gen);
    }
  }
};

// ------------------------------------------------------------------ Llama

torch::Tensor rotate_half(const torch::Tensor& x) {
  const std::int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

class Llama final : public Architecture {
 public:
  torch::Tensor embed(const torch::Tensor& idx, const Params& p, const ModelSpec&, std::int64_t,
                      const Packing*) const override {
    return at::embedding(p[0], idx);
  }

  torch::Tensor block(const torch::Tensor& x, const Params& p, const ModelSpec& s, KvCache* cache,
                      const Packing* packing) const override {
    const std::int64_t B = x.size(0), T = x.size(1), hd = s.head_size(), nh = s.heads, nkv = s.kv_head_count();
    std::size_t i = 0;
    const torch::Tensor& ln1 = p[i++];
    const torch::Tensor& wq = p[i++];
    const torch::Tensor bq = s.attention_bias ? p[i++] : torch::Tensor();
    const torch::Tensor& wk = p[i++];
    const torch::Tensor bk = s.attention_bias ? p[i++] : torch::Tensor();
    const torch::Tensor& wv = p[i++];
    const torch::Tensor bv = s.attention_bias ? p[i++] : torch::Tensor();
    const torch::Tensor& wo = p[i++];
    const torch::Tensor& ln2 = p[i++];
    const torch::Tensor& wgate = p[i++];
    const torch::Tensor& wup = p[i++];
    const torch::Tensor& wdown = p[i++];

    const torch::Tensor h = rms_norm(x, ln1, s.norm_eps);
    torch::Tensor q = at::linear(h, wq, bq).view({B, T, nh, hd}).transpose(1, 2);
    torch::Tensor k = at::linear(h, wk, bk).view({B, T, nkv, hd}).transpose(1, 2);
    torch::Tensor v = at::linear(h, wv, bv).view({B, T, nkv, hd}).transpose(1, 2);
    // Rotary positions 0..T-1 (or the packing's), cos/sin in fp32 as HF's
    // LlamaRotaryEmbedding. inv_freq is computed on the host as HF does (the
    // same bits); from pinned memory the copy is asynchronous: a pageable one
    // would wait for the GPU every block. Each angle is one fp32 product, as
    // in HF's position-ids matmul, so packed positions give the same bits.
    torch::Tensor inv_freq = rope_inv_freq(s);
    if (x.is_cuda()) inv_freq = inv_freq.pin_memory().to(x.device(), /*non_blocking=*/true);
    torch::Tensor freqs;  // [T, hd/2], or [B, 1, T, hd/2] packed
    if (packing) {
      freqs = (packing->positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq).unsqueeze(1);
    } else {
      const std::int64_t first = cache ? cache->length() : 0;
      const torch::Tensor pos =
          torch::arange(first, first + T, torch::TensorOptions().dtype(torch::kFloat32).device(x.device()));
      freqs = torch::outer(pos, inv_freq);
    }
    const torch::Tensor emb = torch::cat({freqs, freqs}, -1);
    const torch::Tensor cos = emb.cos().to(x.scalar_type()), sin = emb.sin().to(x.scalar_type());
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
    std::tie(k, v) = remember(cache, k, v);
    if (nkv != nh) {  // HF repeat_kv: each key/value head serves nh / nkv consecutive query heads
      k = k.repeat_interleave(nh / nkv, 1);
      v = v.repeat_interleave(nh / nkv, 1);
    }
    const torch::Tensor y = causal_attention(q, k, v, packing).transpose(1, 2).contiguous().view({B, T, nh * hd});
    const torch::Tensor out = x + at::linear(y, wo);
    const torch::Tensor m = rms_norm(out, ln2, s.norm_eps);
    return out + at::linear(at::silu(at::linear(m, wgate)) * at::linear(m, wup), wdown);
  }

  torch::Tensor head(const torch::Tensor& x, const Params& head, const Params& emb, const ModelSpec& s) const override {
    const torch::Tensor h = rms_norm(x, head[0], s.norm_eps);
    return at::linear(h, s.tied_embeddings ? emb[0] : head[1]);
  }
  bool head_reads_embedding(const ModelSpec& s) const override { return s.tied_embeddings; }
  void init_param(const std::string& name, torch::Tensor& v, const ModelSpec&, at::Generator& gen) const override {
    if (name.find("norm") != std::string::npos || name.find("layernorm") != std::string::npos) {
      v.fill_(1.0);
    } else if (ends_with(name, ".weight")) {
      v.normal_(0.0, 0.02, gen);
    }  // biases stay zero
  }
};

}  // namespace

const Architecture& architecture_of(const ModelSpec& spec) {
  static const Gpt2 gpt2;
  static const Llama llama;
  return spec.architecture() == zinf::Architecture::kGpt2 ? static_cast<const Architecture&>(gpt2) : llama;
}

Packing packing_from_positions(const torch::Tensor& positions) {
  if (positions.dim() != 2 || positions.scalar_type() != torch::kInt64)
    throw Error("packed positions must be a [B, T] int64 tensor");
  const std::int64_t T = positions.size(1);
  // Document k of a row is the k-th run starting at position 0.
  const torch::Tensor document = positions.eq(0).cumsum(1);
  const torch::Tensor same = document.unsqueeze(2).eq(document.unsqueeze(1));  // [B, T, T]
  const torch::Tensor causal =
      torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(positions.device())).tril();
  return {positions, same.logical_and(causal).unsqueeze(1)};
}

std::shared_ptr<const Packing> forward_packing(const torch::Tensor& positions) {
  if (!positions.defined()) return nullptr;
  return std::make_shared<const Packing>(packing_from_positions(positions));
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  const torch::Tensor f = x.to(torch::kFloat32);
  const torch::Tensor normed = f * torch::rsqrt(f.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

torch::Tensor rope_inv_freq(const ModelSpec& s) {
  const std::int64_t d = s.head_size();
  torch::Tensor inv =
      1.0 / torch::pow(s.rope_theta, torch::arange(0, d, 2, torch::kInt64).to(torch::kFloat32) / double(d));
  const RopeScaling& r = s.rope_scaling;
  if (r.type == "linear") return inv / r.factor;
  if (r.type == "llama3") {
    const double old_len = double(r.original_max_position);
    const double low_wavelen = old_len / r.low_freq_factor, high_wavelen = old_len / r.high_freq_factor;
    const torch::Tensor wavelen = 2.0 * M_PI / inv;
    torch::Tensor scaled = torch::where(wavelen > low_wavelen, inv / r.factor, inv);
    const torch::Tensor smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
    const torch::Tensor smoothed = (1 - smooth) * scaled / r.factor + smooth * scaled;
    const torch::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    return torch::where(medium, smoothed, scaled);
  }
  if (r.type != "none" && r.type != "default")
    throw UsageError("rope_scaling type '" + r.type + "' is not supported", "supported: none, linear, llama3");
  return inv;
}

void initial_block(const ModelSpec& spec, std::uint64_t seed, std::size_t index, float* dst) {
  const auto layout = model_layout(spec);
  if (index >= layout.size())
    throw Error("block " + std::to_string(index) + " of a model with " + std::to_string(layout.size()) + " blocks");
  const BlockLayout& block = layout[index];
  torch::Tensor flat = torch::from_blob(dst, {block.numel}, torch::kFloat32);
  flat.zero_();
  // splitmix64 of (seed, block): independent streams per block.
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (std::uint64_t(index) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  at::Generator gen = at::detail::createCPUGenerator(z ^ (z >> 31));
  const Architecture& arch = architecture_of(spec);
  torch::NoGradGuard no_grad;
  for (const auto& p : block.params) {
    torch::Tensor v = flat.narrow(0, p.offset - block.offset, p.numel);
    arch.init_param(p.name, v, spec, gen);
  }
}

}  // namespace zinf::model
