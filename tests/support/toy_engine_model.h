// Test support: a toy model of three engine blocks, one used twice as a tied
// head uses the embedding. Block 0: W0 [hidden x in] + b0 [hidden]; block 1:
// W1 [hidden x hidden]; block 2: a scale [hidden], computed with W0 again.
// forward(x [rows, in]) = ((tanh(tanh(x W0^T + b0) W1^T) * scale) W0), [rows, in].
#pragma once

#include <torch/torch.h>

#include <vector>

#include "zero/offload_engine.h"

namespace zinf::test {

struct ToyEngineModel {
  std::int64_t in = 0, hidden = 0;

  std::vector<zero::EngineBlock> blocks() const {
    return {{"in", hidden * in + hidden}, {"mid", hidden * hidden}, {"out", hidden}};
  }
  std::int64_t numel() const { return hidden * in + hidden + hidden * hidden + hidden; }
  torch::Tensor w0(const torch::Tensor& block0) const { return block0.narrow(0, 0, hidden * in).view({hidden, in}); }

  // The three calls; f: the flat blocks each call gets.
  torch::Tensor embed(const torch::Tensor& x, const std::vector<torch::Tensor>& f) const {
    return torch::tanh(at::linear(x, w0(f[0]), f[0].narrow(0, hidden * in, hidden)));
  }
  torch::Tensor mid(const torch::Tensor& x, const std::vector<torch::Tensor>& f) const {
    return torch::tanh(at::linear(x, f[0].view({hidden, hidden})));
  }
  torch::Tensor head(const torch::Tensor& x, const std::vector<torch::Tensor>& f) const {  // f: block 2, block 0
    return at::linear(x * f[0], w0(f[1]).t());
  }

  // Through the engine.
  torch::Tensor forward(zero::OffloadEngine& e, const torch::Tensor& x) const {
    using Flats = std::vector<torch::Tensor>;
    torch::Tensor h = e.run({0}, [this](const torch::Tensor& v, const Flats& f) { return embed(v, f); }, x);
    h = e.run({1}, [this](const torch::Tensor& v, const Flats& f) { return mid(v, f); }, h);
    return e.run({2, 0}, [this](const torch::Tensor& v, const Flats& f) { return head(v, f); }, h);
  }

  // With plain autograd over the flat vector w [numel()]: the reference.
  torch::Tensor reference(const torch::Tensor& w, const torch::Tensor& x) const {
    const torch::Tensor b0 = w.narrow(0, 0, hidden * in + hidden);
    const torch::Tensor b1 = w.narrow(0, hidden * in + hidden, hidden * hidden);
    const torch::Tensor b2 = w.narrow(0, hidden * in + hidden + hidden * hidden, hidden);
    return head(mid(embed(x, {b0}), {b1}), {b2, b0});
  }
};

}  // namespace zinf::test
