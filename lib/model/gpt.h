// zinf::model — the GPT-style decoder.
// Implements: Gpt, a pre-LayerNorm decoder (causal self-attention, tanh-GELU
// MLP, learned positions, LM head tied to the token embedding) whose
// parameters are views into ONE flat buffer and whose gradients land in ONE
// flat gradient buffer, so the optimizer, transfers and swaps each see one
// contiguous tensor. Forward runs block by block (embed, block i, head), each
// block optionally under activation checkpointing (model/checkpointed_block.h).
// Attention uses at::scaled_dot_product_attention on LibTorch >= 2 (fused
// kernels on CUDA) and an explicit masked softmax on 1.13.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "core/model_spec.h"
#include "model/layout.h"

namespace zinf::model {

struct Packing;  // model/architecture.h

struct GptOptions {
  ModelSpec spec;
  torch::Dtype dtype = torch::kFloat32;   // parameters, activations and gradients
  torch::Device device = torch::kCPU;
  bool activation_checkpointing = false;
  // Elements the flat parameter and gradient buffers are allocated with
  // (>= the parameter count; 0 = exactly the parameter count). Padding makes
  // a buffer split into equal world-size shards, so collectives can read and
  // write it in place (train/data_parallel.h); the padding stays zero.
  std::int64_t padded_numel = 0;
  // true: one flat gradient buffer whose views are the parameters' .grad, so
  // autograd accumulates into it in place (an fp32 model: it is the master
  // gradient). false: no flat buffer; each backward gives every parameter a
  // fresh .grad, as plain PyTorch does, and move_grads_into() copies them
  // into the caller's fp32 sum and frees them. For a bf16/fp16 model this
  // saves the in-place add, the zeroing pass and the buffer itself.
  bool flat_grads = true;
};

class Gpt {
 public:
  explicit Gpt(const GptOptions& options);
  Gpt(const Gpt&) = delete;
  Gpt& operator=(const Gpt&) = delete;

  const GptOptions& options() const { return options_; }
  const std::vector<BlockLayout>& layout() const { return layout_; }
  std::int64_t numel() const { return numel_; }

  torch::Tensor& params() { return params_; }  // [numel] dtype, device
  torch::Tensor& grads() { return grads_; }    // [numel] dtype, device; param.grad are views into it (flat_grads)
  // The whole buffers, padding included: [padded_numel] (params() and
  // grads() are their first numel elements).
  torch::Tensor& padded_params() { return padded_params_; }
  torch::Tensor& padded_grads() { return padded_grads_; }
  void zero_grads();
  // Without flat_grads: each parameter's .grad into flat[offset, offset +
  // numel) of `flat` (fp32, >= numel elements), copied when `assign` (a
  // parameter backward left without a gradient gives zeros) else added; the
  // .grad tensors are released.
  void move_grads_into(torch::Tensor& flat, bool assign);

  // GPT-2 initialisation ([numel] fp32, CPU): normal(0, 0.02) for embeddings
  // and linear weights, 0.02/sqrt(2*layers) for the two residual
  // projections, zero biases, unit LayerNorm weights. Same seed, same weights;
  // model::initial_block makes one block of it alone.
  static torch::Tensor initial_weights(const ModelSpec& spec, std::uint64_t seed);

  // Copies a flat fp32 buffer (e.g. master weights) into the parameters.
  void load_flat(const torch::Tensor& flat);

  // The parameters of block b (layout order) as views.
  const std::vector<torch::Tensor>& block_params(std::size_t b) const { return views_[b]; }

  // idx [B, T] int64 -> logits [B, T, vocab] (dtype). positions [B, T]
  // int64, when given: rows packed with several documents, each token at its
  // position in its document and attending within it (model::Packing).
  torch::Tensor forward(const torch::Tensor& idx, const torch::Tensor& positions = {});
  // Next-token cross entropy in fp32 (scalar) over the targets that are not
  // kIgnoreTarget: their mean, or (loss_sum) their sum.
  torch::Tensor loss(const torch::Tensor& idx, const torch::Tensor& targets, const torch::Tensor& positions = {});
  torch::Tensor loss_sum(const torch::Tensor& idx, const torch::Tensor& targets, const torch::Tensor& positions = {});

 private:
  torch::Tensor embed(const torch::Tensor& idx, const Packing* packing);
  torch::Tensor head(const torch::Tensor& x);

  GptOptions options_;
  std::vector<BlockLayout> layout_;
  std::int64_t numel_ = 0;
  torch::Tensor padded_params_, padded_grads_;  // [padded_numel] dtype, device
  torch::Tensor params_, grads_;                // [numel] views of the above
  std::vector<std::vector<torch::Tensor>> views_;  // [blocks][params] leaf views into params_
};

// Next-token cross entropy of logits [B, T, V] (any float dtype) against
// targets [B, T] int64, in fp32, skipping targets equal to kIgnoreTarget
// (core/targets.h): their sum, or their mean (NaN when every target is skipped).
torch::Tensor next_token_loss(const torch::Tensor& logits, const torch::Tensor& targets, bool sum);

}  // namespace zinf::model
