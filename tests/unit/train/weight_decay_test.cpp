// train: zinf's weight decay recipe on every optimizer path. With a zero
// gradient an AdamW step changes a weight only through its decay, so after
// one step a block matrix (or an untied lm_head) is exactly w * (1 - lr*wd)
// and a norm weight, a bias or an embedding is bit-identical: on the dense
// path (DataParallel, stage none), and through the ZeRO engine with its
// optimizer on the device (tensor ops), in CPU memory and on NVMe (the CPU
// Adam over sub-groups that cut across parameters). "all" decays everything.
#include "model/gpt.h"
#include "model/layout.h"
#include "train/data_parallel.h"
#include "train/zero_gpt.h"

#include "core/model_spec.h"
#include "support/test_util.h"
#include "unit/model/torch_doctest.h"

using namespace zinf;

namespace {

constexpr double kLr = 0.05, kWd = 0.1;

ModelSpec gpt2() { return ModelSpec{"custom", 64, 8, 16, 2, 2}; }

ModelSpec llama_untied() {
  ModelSpec s{"custom", 61, 8, 16, 2, 4};
  s.model_type = "llama";
  s.kv_heads = 2;
  s.intermediate_size = 24;
  s.tied_embeddings = false;
  return s;
}

config::Settings settings_for(const ModelSpec& spec, bool decay_all) {
  config::Settings s;
  s.model = spec;
  s.weight_decay = kWd;
  s.adamw = true;
  s.weight_decay_all = decay_all;
  return s;
}

// after[i] against before[i]: what the layout says must decay shrank by
// exactly lr*wd (in float, as every path computes it), all else is unchanged.
void check_decay(const ModelSpec& spec, const torch::Tensor& before, const torch::Tensor& after, bool decay_all) {
  const float factor = static_cast<float>(1.0 - kLr * kWd);
  const float* w = before.data_ptr<float>();
  const float* got = after.data_ptr<float>();
  for (const auto& block : model::model_layout(spec))
    for (const auto& p : block.params) {
      const bool decays = decay_all || (block.name != "embedding" && p.shape.size() == 2);
      std::int64_t wrong = 0;
      for (std::int64_t i = p.offset; i < p.offset + p.numel; ++i) {
        const float want = decays ? w[i] * factor : w[i];
        if (std::memcmp(&want, &got[i], sizeof(float)) != 0) ++wrong;
      }
      CAPTURE(p.name);
      CAPTURE(decays);
      CHECK(wrong == 0);
    }
}

}  // namespace

TEST_CASE("dense path: with a zero gradient AdamW shrinks block matrices by lr*wd*w and leaves norms, biases, embeddings") {
  for (const ModelSpec& spec : {gpt2(), llama_untied()}) {
    for (const bool all : {false, true}) {
      CAPTURE(spec.model_type);
      CAPTURE(all);
      const config::Settings s = settings_for(spec, all);
      const train::RankGroup group(nullptr, torch::kCPU);
      model::Gpt model({spec, torch::kFloat32, torch::kCPU, false});
      optim::AdamWOptions adam{0.9, 0.999, 1e-8, kWd, true, train::weight_decay_exempt(s)};
      CHECK(adam.no_decay.empty() == all);
      train::DataParallel dp(model, group, 0, 1 << 20, adam);
      const torch::Tensor w0 = model::Gpt::initial_weights(spec, 5);
      dp.init(w0);
      dp.zero_grads();
      torch::Tensor& grad = dp.reduce();
      CHECK(grad.abs().sum().item<double>() == 0);
      dp.step(grad, kLr);
      check_decay(spec, w0, model.params(), all);
    }
  }
}

TEST_CASE("engine path: the same on the device, CPU and NVMe optimizer homes, sub-groups cutting across parameters") {
  test::TempDir dir("zinf-weight-decay");
  for (const ModelSpec& spec : {gpt2(), llama_untied()}) {
    for (const Tier home : {Tier::kDevice, Tier::kCpu, Tier::kNvme}) {
      for (const bool all : {false, true}) {
        CAPTURE(spec.model_type);
        CAPTURE(tier_name(home));
        CAPTURE(all);
        config::Settings s = settings_for(spec, all);
        s.zero_stage = 3;
        s.offload_param.device = home;
        s.offload_optimizer.device = home;
        s.offload_param.nvme_path = s.offload_optimizer.nvme_path = dir.path();
        s.sub_group_size = 333;  // sub-groups that start and end inside parameters
        const train::OffloadPlan plan = train::resolve_offload(s, torch::kCPU, torch::kFloat32);
        REQUIRE_FALSE(plan.fell_back);
        CHECK(plan.engine.no_decay.empty() == all);
        const torch::Tensor w0 = model::Gpt::initial_weights(spec, 5);
        train::ZeroGpt gpt(spec, w0, plan.engine);
        // A real backward whose gradient is zero everywhere.
        const torch::Tensor idx = torch::zeros({1, spec.seq_len}, torch::kInt64);
        (gpt.loss(idx, idx) * 0.0).backward();
        const zero::StepResult r = gpt.engine().step(kLr, 1.0, 0.0);
        CHECK(r.grad_norm == 0);
        check_decay(spec, w0, gpt.engine().parameters(), all);
        check_decay(spec, w0, gpt.engine().master_weights(), all);
      }
    }
  }
}
