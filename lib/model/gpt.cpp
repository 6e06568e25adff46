// zinf::model — the GPT decoder over flat buffers.
#include "model/gpt.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/targets.h"
#include "core/torch_compat.h"
#include "model/architecture.h"
#include "model/checkpointed_block.h"

namespace zinf::model {
namespace F = torch::nn::functional;

// ------------------------------------------------------------ construction

Gpt::Gpt(const GptOptions& options) : options_(options), layout_(model_layout(options.spec)) {
  numel_ = layout_.back().offset + layout_.back().numel;
  if (options.padded_numel != 0 && options.padded_numel < numel_)
    throw Error("padded_numel " + std::to_string(options.padded_numel) + " is less than the model's " +
                std::to_string(numel_) + " parameters");
  const std::int64_t allocated = std::max(numel_, options.padded_numel);
  const auto topts = torch::TensorOptions().dtype(options.dtype).device(options.device);
  padded_params_ = torch::zeros({allocated}, topts);
  params_ = padded_params_.narrow(0, 0, numel_);
  if (options.flat_grads) {
    padded_grads_ = torch::zeros({allocated}, topts);
    grads_ = padded_grads_.narrow(0, 0, numel_);
  }
  for (const auto& block : layout_) {
    std::vector<torch::Tensor> views;
    for (const auto& p : block.params) {
      torch::Tensor v = params_.narrow(0, p.offset, p.numel).view(p.shape);
      v.requires_grad_(true);
      // Autograd accumulates into an existing .grad in place, so every
      // backward writes straight into the flat gradient buffer.
      if (options.flat_grads) v.mutable_grad() = grads_.narrow(0, p.offset, p.numel).view(p.shape);
      views.push_back(v);
    }
    views_.push_back(std::move(views));
  }
}

void Gpt::zero_grads() {
  if (options_.flat_grads) {
    padded_grads_.zero_();
    return;
  }
  for (auto& block : views_)
    for (torch::Tensor& v : block) v.mutable_grad().reset();
}

void Gpt::move_grads_into(torch::Tensor& flat, bool assign) {
  if (options_.flat_grads) throw Error("move_grads_into needs a model built without flat_grads");
  if (flat.numel() < numel_ || flat.scalar_type() != torch::kFloat32)
    throw Error("move_grads_into needs an fp32 buffer of at least " + std::to_string(numel_) + " elements");
  torch::NoGradGuard no_grad;
  for (std::size_t b = 0; b < views_.size(); ++b) {
    for (std::size_t i = 0; i < views_[b].size(); ++i) {
      const ParamInfo& p = layout_[b].params[i];
      torch::Tensor dst = flat.narrow(0, p.offset, p.numel);
      torch::Tensor& g = views_[b][i].mutable_grad();
      if (g.defined()) {
        if (assign) dst.copy_(g.reshape({-1}));
        else dst.add_(g.reshape({-1}));
        g.reset();
      } else if (assign) {
        dst.zero_();
      }
    }
  }
}

torch::Tensor Gpt::initial_weights(const ModelSpec& spec, std::uint64_t seed) {
  const auto layout = model_layout(spec);
  torch::Tensor flat = torch::empty({layout.back().offset + layout.back().numel}, torch::kFloat32);
  for (std::size_t b = 0; b < layout.size(); ++b)
    model::initial_block(spec, seed, b, flat.data_ptr<float>() + layout[b].offset);
  return flat;
}

void Gpt::load_flat(const torch::Tensor& flat) {
  if (flat.numel() != numel_)
    throw Error("weights of " + std::to_string(flat.numel()) + " elements do not fit a model of " +
                    std::to_string(numel_) + " parameters",
                "load weights written for the same model dimensions");
  torch::NoGradGuard no_grad;
  params_.copy_(flat);
}

// ------------------------------------------------------------ forward

torch::Tensor Gpt::embed(const torch::Tensor& idx, const Packing* packing) {
  const auto& p = views_.front();
  const std::int64_t T = idx.size(1);
  if (T > options_.spec.seq_len)
    throw UsageError("a sequence of " + std::to_string(T) + " tokens exceeds the model's seq-len " +
                     std::to_string(options_.spec.seq_len));
  return architecture_of(options_.spec).embed(idx, p, options_.spec, 0, packing);
}

torch::Tensor Gpt::head(const torch::Tensor& x) {
  return architecture_of(options_.spec).head(x, views_.back(), views_.front(), options_.spec);
}

torch::Tensor Gpt::forward(const torch::Tensor& idx, const torch::Tensor& positions) {
  const std::shared_ptr<const Packing> packing = forward_packing(positions);
  torch::Tensor x = embed(idx, packing.get());
  const Architecture& arch = architecture_of(options_.spec);
  const ModelSpec& spec = options_.spec;
  for (std::size_t b = 1; b + 1 < views_.size(); ++b) {
    if (options_.activation_checkpointing && torch::GradMode::is_enabled()) {
      x = checkpointed([&arch, spec, packing](const torch::Tensor& in, const std::vector<torch::Tensor>& p) {
        return arch.block(in, p, spec, nullptr, packing.get());
      }, x, views_[b]);
    } else {
      x = arch.block(x, views_[b], spec, nullptr, packing.get());
    }
  }
  return head(x);
}

torch::Tensor Gpt::loss(const torch::Tensor& idx, const torch::Tensor& targets, const torch::Tensor& positions) {
  return next_token_loss(forward(idx, positions), targets, /*sum=*/false);
}

torch::Tensor Gpt::loss_sum(const torch::Tensor& idx, const torch::Tensor& targets, const torch::Tensor& positions) {
  return next_token_loss(forward(idx, positions), targets, /*sum=*/true);
}

torch::Tensor next_token_loss(const torch::Tensor& logits, const torch::Tensor& targets, bool sum) {
  const std::int64_t vocab = logits.size(-1);
  return at::cross_entropy_loss(logits.reshape({-1, vocab}).to(torch::kFloat32), targets.reshape({-1}), {},
                                sum ? at::Reduction::Sum : at::Reduction::Mean, kIgnoreTarget);
}

}  // namespace zinf::model
