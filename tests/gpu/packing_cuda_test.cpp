// GPU: packed rows on CUDA, where attention with a boolean mask runs
// SDPA's memory-efficient kernel instead of flash. Each document of a packed
// row gets the logits it gets alone (fp32 tightly, bf16 within bf16's
// rounding), and the fp32 gradients of the packed row equal the documents'.
#include <torch/torch.h>

#include <vector>

#include "model/architecture.h"
#include "model/gpt.h"
#include "support/packed_positions.h"
#include "unit/model/torch_doctest.h"  // last: undoes glog's CHECK

using namespace zinf;
using namespace zinf::model;

namespace {

ModelSpec llama_spec() {
  ModelSpec spec{"custom", 512, 256, 128, 2, 4};
  spec.model_type = "llama";
  spec.kv_heads = 2;
  spec.intermediate_size = 256;
  spec.tied_embeddings = false;
  return spec;
}

}  // namespace

TEST_CASE("packed rows on CUDA: each document's logits and gradients are the ones it has alone") {
  const ModelSpec spec = llama_spec();
  const torch::Device cuda(torch::kCUDA);
  const torch::Tensor w = Gpt::initial_weights(spec, 4);
  torch::manual_seed(8);
  const torch::Tensor a = torch::randint(512, {1, 101}, torch::kInt64), b = torch::randint(512, {1, 121}, torch::kInt64);
  const torch::Tensor pad = torch::zeros({1, 34}, torch::kInt64);
  const torch::Tensor in = torch::cat({a.narrow(1, 0, 100), b.narrow(1, 0, 120), pad}, 1).to(cuda);
  const torch::Tensor tg =
      torch::cat({a.narrow(1, 1, 100), b.narrow(1, 1, 120), torch::full({1, 34}, -100, torch::kInt64)}, 1).to(cuda);
  const torch::Tensor pos = test::packed_positions({100, 120, 34}).to(cuda);
  for (const torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    CAPTURE(dtype);
    const double tol = dtype == torch::kFloat32 ? 1e-4 : 3e-2;
    Gpt g({spec, dtype, cuda, false});
    g.load_flat(w.to(cuda));
    const torch::Tensor packed = g.forward(in, pos).detach().to(torch::kFloat32);
    const torch::Tensor alone_a = g.forward(in.narrow(1, 0, 100)).detach().to(torch::kFloat32);
    const torch::Tensor alone_b = g.forward(in.narrow(1, 100, 120)).detach().to(torch::kFloat32);
    CHECK(torch::allclose(packed.narrow(1, 0, 100), alone_a, tol, tol));
    CHECK(torch::allclose(packed.narrow(1, 100, 120), alone_b, tol, tol));
    if (dtype != torch::kFloat32) continue;
    g.zero_grads();
    g.loss_sum(in, tg, pos).backward();
    const torch::Tensor packed_grads = g.grads().clone();
    g.zero_grads();
    (g.loss_sum(in.narrow(1, 0, 100), tg.narrow(1, 0, 100)) + g.loss_sum(in.narrow(1, 100, 120), tg.narrow(1, 100, 120)))
        .backward();
    CHECK(packed_grads.abs().sum().item<double>() > 0);
    CHECK(torch::allclose(packed_grads, g.grads(), 1e-4, 1e-5));
  }
}
