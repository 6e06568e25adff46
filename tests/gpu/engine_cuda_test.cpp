// GPU: the offload engine on CUDA. A toy model of three blocks (one used
// twice, as a tied head uses the embedding) trains through the engine on the
// GPU and must match the same engine on the CPU: every home of parameters and
// optimizer, fp32 and bf16, with and without gradient accumulation (direct
// 16-bit gradients vs fp32 accumulation through pinned pieces, or summed on
// the device and sent once per step) and NVMe gradients. Exercises the side streams, the events and the optimizer
// overlapping the next forward; the timeline must see device time.
#include <torch/torch.h>

#include "support/test_util.h"
#include "support/toy_engine_model.h"
#include "zero/offload_engine.h"
#include "unit/model/torch_doctest.h"  // last: undoes glog's CHECK

using namespace zinf;
using namespace zinf::zero;

namespace {

constexpr std::int64_t kIn = 16, kHidden = 64;
const test::ToyEngineModel kModel{kIn, kHidden};
const std::vector<EngineBlock> kBlocks = kModel.blocks();
const std::int64_t kNumel = kModel.numel();

torch::Tensor initial() {
  torch::manual_seed(3);
  return torch::randn({kNumel}) * 0.2;
}

torch::Tensor batch(int i, torch::Device d, torch::Dtype t) {
  torch::manual_seed(50 + i);
  return torch::randn({8, kIn}).to(d, t);
}

torch::Tensor loss_of(OffloadEngine& e, const torch::Tensor& x) {
  return kModel.forward(e, x).to(torch::kFloat32).pow(2).mean();
}

std::vector<double> train(OffloadEngine& e, torch::Device d, torch::Dtype t, int accum) {
  std::vector<double> losses;
  for (int s = 0; s < 6; ++s) {
    double sum = 0;
    for (int m = 0; m < accum; ++m) {
      e.set_accumulation_boundary(m + 1 == accum);
      torch::Tensor l = loss_of(e, batch(s * accum + m, d, t)) / double(accum);
      l.backward();
      sum += l.item<double>();
    }
    losses.push_back(sum);
    e.step(0.02, 1.0, 0.5);
  }
  return losses;
}

}  // namespace

TEST_CASE("the engine on CUDA trains like the engine on the CPU, at every home, fp32 and bf16") {
  REQUIRE(torch::cuda::is_available());
  test::TempDir dir("zinf-gpu-engine");
  struct Case {
    Tier params, optimizer;
    bool nvme_grads;
    int accum;
    bool sums_on_device = false;  // the GPU engine sums micro-batches on the device; the CPU one on the host
  };
  const std::vector<Case> cases = {{Tier::kCpu, Tier::kCpu, false, 1},     {Tier::kCpu, Tier::kCpu, false, 3},
                                   {Tier::kNvme, Tier::kNvme, true, 2},    {Tier::kDevice, Tier::kCpu, false, 1},
                                   {Tier::kDevice, Tier::kDevice, false, 2}, {Tier::kNvme, Tier::kCpu, false, 1},
                                   {Tier::kCpu, Tier::kCpu, false, 3, true}, {Tier::kNvme, Tier::kNvme, true, 2, true},
                                   {Tier::kDevice, Tier::kCpu, false, 2, true}};
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (const Case& c : cases) {
      const std::string label = std::string(tier_name(c.params)) + "/" + tier_name(c.optimizer) +
                                (c.nvme_grads ? " nvme-grads" : "") + " accum " + std::to_string(c.accum) +
                                (c.sums_on_device ? " sums-on-device" : "") +
                                (dtype == torch::kBFloat16 ? " bf16" : " fp32");
      CAPTURE(label);
      auto options = [&](torch::Device d) {
        OffloadEngineOptions o;
        o.device = d;
        o.dtype = dtype;
        o.param_home = c.params;
        o.optimizer_home = c.optimizer;
        o.gradients_on_nvme = c.nvme_grads;
        o.accumulate_gradients = c.accum > 1;
        o.nvme_path = dir.path();
        o.sub_group_size = 1500;
        o.buffer_count = 2;
        o.buffer_size = 1024;  // blocks stream through the pool in pieces
        o.adam.weight_decay = 0.01;
        return o;
      };
      OffloadEngine cpu(options(torch::kCPU), kBlocks, initial());
      OffloadEngineOptions gpu_options = options(torch::Device(torch::kCUDA, 0));
      gpu_options.accumulate_on_device = c.sums_on_device;
      OffloadEngine gpu(gpu_options, kBlocks, initial());
      const auto want = train(cpu, torch::kCPU, dtype, c.accum);
      const auto got = train(gpu, torch::Device(torch::kCUDA, 0), dtype, c.accum);
      const double tol = dtype == torch::kFloat32 ? 1e-4 : 3e-2;
      for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol));
      gpu.synchronize();
      // Adam normalises each gradient element, so rounding differences in a
      // near-zero gradient can move a weight by up to about lr per step: the
      // bound is a fraction of lr (0.02) in fp32 and a few lr in bf16.
      const double diff = (gpu.master_weights() - cpu.master_weights()).abs().max().item<double>();
      CHECK(diff < (dtype == torch::kFloat32 ? 2e-3 : 0.1));
      const StepTimeline t = gpu.take_timeline();
      CHECK(t.compute_s > 0);
      if (c.params != Tier::kDevice) CHECK(t.h2d_s > 0);
      if (c.optimizer != Tier::kDevice) CHECK(t.d2h_s > 0);
      if (c.sums_on_device) {  // per step: every block's fp32 sum once, and the tied block's second use
        const std::int64_t e = c10::elementSize(dtype), tied = kHidden * kIn + kHidden;
        CHECK(gpu.counters().d2h_bytes == 6 * (kNumel * 4 + tied * e));
      }
    }
  }
}
