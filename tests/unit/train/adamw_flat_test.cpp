// train: the flat AdamW/Adam equals torch's optimizers on a small model.
#include "model/gpt.h"
#include "optim/adamw_tensor.h"
#include "unit/model/torch_doctest.h"

using namespace zinf;

namespace {

// Runs `steps` optimizer steps on the same model and data with torch's
// optimizer over the separate parameters and with AdamWFlat over the flat
// buffer; returns the largest absolute difference of the weights.
template <typename TorchOpt, typename TorchOptOptions>
double max_difference(bool decoupled, const TorchOptOptions& torch_options, int steps) {
  const ModelSpec spec{"custom", 32, 8, 16, 2, 2};
  const torch::Tensor w0 = model::Gpt::initial_weights(spec, 5);
  model::Gpt flat_model({spec}), ref_model({spec});
  flat_model.load_flat(w0);
  ref_model.load_flat(w0);
  std::vector<torch::Tensor> ref_params;
  for (std::size_t b = 0; b < ref_model.layout().size(); ++b)
    for (const auto& p : ref_model.block_params(b)) ref_params.push_back(p);
  TorchOpt ref(ref_params, torch_options);
  optim::AdamWFlat flat(flat_model.params(), {0.9, 0.95, 1e-8, 0.1, decoupled});
  at::Generator gen = at::detail::createCPUGenerator(9);
  for (int i = 0; i < steps; ++i) {
    const auto idx = torch::randint(32, {2, 8}, gen, torch::kInt64), tgt = torch::randint(32, {2, 8}, gen, torch::kInt64);
    flat_model.zero_grads();
    ref_model.zero_grads();
    flat_model.loss(idx, tgt).backward();
    ref_model.loss(idx, tgt).backward();
    flat.step(flat_model.grads(), 1e-2);
    ref.step();
  }
  CHECK(flat.step_count() == steps);
  CHECK_FALSE(torch::equal(flat_model.params(), w0));
  return (flat_model.params() - ref_model.params()).abs().max().item<double>();
}

}  // namespace

TEST_CASE("flat AdamW equals torch::optim::AdamW") {
  const double diff = max_difference<torch::optim::AdamW>(
      true, torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1), 10);
  CHECK(diff < 1e-6);
}

TEST_CASE("flat Adam with L2 weight decay equals torch::optim::Adam") {
  const double diff = max_difference<torch::optim::Adam>(
      false, torch::optim::AdamOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1), 10);
  CHECK(diff < 1e-6);
}

TEST_CASE("AdamWFlat refuses a buffer that is not flat fp32") {
  CHECK_THROWS_WITH(optim::AdamWFlat(torch::zeros({4, 4}), {}), doctest::Contains("1-D fp32"));
  CHECK_THROWS(optim::AdamWFlat(torch::zeros({4}, torch::kFloat64), {}));
}
