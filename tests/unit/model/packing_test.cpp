// model: packed rows (several documents in one row, model::Packing). Each
// document's logits and gradients equal those of the document run alone, for
// GPT-2 (learned positions) and the Llama family (rotary positions, GQA),
// with and without activation checkpointing; the mask keeps attention within
// a document and is causal inside it.
#include <vector>

#include "model/architecture.h"
#include "model/gpt.h"
#include "support/packed_positions.h"
#include "unit/model/torch_doctest.h"

using namespace zinf;
using namespace zinf::model;

namespace {

ModelSpec gpt2_spec() { return ModelSpec{"custom", 64, 16, 32, 2, 4}; }

ModelSpec llama_spec() {
  ModelSpec spec{"custom", 64, 16, 32, 2, 4};
  spec.model_type = "llama";
  spec.kv_heads = 2;
  spec.intermediate_size = 40;
  spec.tied_embeddings = false;
  return spec;
}

torch::Tensor ids(std::int64_t n, std::uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return torch::randint(64, {1, n}, gen, torch::kInt64);
}

}  // namespace

TEST_CASE("the packing mask is causal within a document and closed between documents") {
  const Packing p = packing_from_positions(test::packed_positions({2, 3}));
  REQUIRE(p.allowed.sizes() == std::vector<std::int64_t>{1, 1, 5, 5});
  const torch::Tensor want = torch::tensor({1, 0, 0, 0, 0,  //
                                            1, 1, 0, 0, 0,  //
                                            0, 0, 1, 0, 0,  //
                                            0, 0, 1, 1, 0,  //
                                            0, 0, 1, 1, 1},
                                           torch::kInt64)
                                 .to(torch::kBool)
                                 .view({1, 1, 5, 5});
  CHECK(torch::equal(p.allowed, want));
  CHECK_THROWS_WITH(packing_from_positions(torch::zeros({4}, torch::kInt64)), doctest::Contains("[B, T] int64"));
}

TEST_CASE("a packed row gives each document the logits and gradients it has alone") {
  for (const ModelSpec& spec : {gpt2_spec(), llama_spec()}) {
    for (const bool ckpt : {false, true}) {
      CAPTURE(spec.model_type);
      CAPTURE(ckpt);
      const torch::Tensor w = Gpt::initial_weights(spec, 5);
      // Documents of 5 and 7 tokens, then 4 positions of padding (a run of its own).
      const torch::Tensor a = ids(6, 1), b = ids(8, 2), pad = torch::full({1, 4}, 3, torch::kInt64);
      const torch::Tensor a_in = a.narrow(1, 0, 5), a_tg = a.narrow(1, 1, 5);
      const torch::Tensor b_in = b.narrow(1, 0, 7), b_tg = b.narrow(1, 1, 7);
      const torch::Tensor packed_in = torch::cat({a_in, b_in, pad}, 1);
      const torch::Tensor packed_tg = torch::cat({a_tg, b_tg, torch::full({1, 4}, -100, torch::kInt64)}, 1);
      const torch::Tensor pos = test::packed_positions({5, 7, 4});

      Gpt alone({spec, torch::kFloat32, torch::kCPU, ckpt});
      alone.load_flat(w);
      const torch::Tensor a_logits = alone.forward(a_in).detach(), b_logits = alone.forward(b_in).detach();
      alone.zero_grads();
      (alone.loss_sum(a_in, a_tg) + alone.loss_sum(b_in, b_tg)).backward();

      Gpt packed({spec, torch::kFloat32, torch::kCPU, ckpt});
      packed.load_flat(w);
      const torch::Tensor logits = packed.forward(packed_in, pos).detach();
      CHECK(torch::allclose(logits.narrow(1, 0, 5), a_logits, 1e-5, 1e-5));
      CHECK(torch::allclose(logits.narrow(1, 5, 7), b_logits, 1e-5, 1e-5));
      packed.zero_grads();
      packed.loss_sum(packed_in, packed_tg, pos).backward();
      CHECK(packed.grads().abs().sum().item<double>() > 0);
      CHECK(torch::allclose(packed.grads(), alone.grads(), 1e-5, 1e-6));

      // Without positions the same row is one sequence: document b then sees a.
      const torch::Tensor unpacked = packed.forward(packed_in).detach();
      CHECK(torch::allclose(unpacked.narrow(1, 0, 5), a_logits, 1e-5, 1e-5));
      CHECK_FALSE(torch::allclose(unpacked.narrow(1, 5, 7), b_logits, 1e-3, 1e-3));
    }
  }
}

TEST_CASE("rows of one batch pack independently; a row with one document equals the unpacked forward") {
  const ModelSpec spec = llama_spec();
  Gpt g({spec, torch::kFloat32, torch::kCPU, false});
  g.load_flat(Gpt::initial_weights(spec, 9));
  const torch::Tensor x = torch::cat({ids(12, 3), ids(12, 4)}, 0);
  const torch::Tensor pos = torch::cat({test::packed_positions({12}), test::packed_positions({6, 6})}, 0);
  const torch::Tensor logits = g.forward(x, pos).detach();
  CHECK(torch::allclose(logits[0], g.forward(x.narrow(0, 0, 1)).detach()[0], 1e-5, 1e-5));
  CHECK(torch::allclose(logits[1].narrow(0, 6, 6), g.forward(x.narrow(0, 1, 1).narrow(1, 6, 6)).detach()[0], 1e-5,
                        1e-5));
}
