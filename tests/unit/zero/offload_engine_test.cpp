// zero: the offload engine. A toy model of three blocks (one used twice, as a
// tied head uses the embedding) trained through the engine gets the same
// gradients and updates as plain autograd + LibTorch's AdamW, whatever the
// parameters' and optimizer's home; clipping, overflow skip, state round trip.
#include "zero/offload_engine.h"

#include "core/error.h"
#include "support/test_util.h"
#include "support/toy_engine_model.h"
#include "unit/model/torch_doctest.h"

using namespace zinf;
using namespace zinf::zero;

namespace {

// Block 0: [8x4] matrix + [8] bias; block 1: [8x8]; block 2: [8] scale.
const test::ToyEngineModel kModel{4, 8};
const std::vector<EngineBlock> kBlocks = kModel.blocks();

torch::Tensor initial() {
  torch::manual_seed(7);
  return torch::randn({112}) * 0.3;
}

torch::Tensor batch(int i) {
  torch::manual_seed(100 + i);
  return torch::randn({6, 4});
}

torch::Tensor reference_loss(const torch::Tensor& w, const torch::Tensor& x) { return kModel.reference(w, x).pow(2).mean(); }

torch::Tensor engine_loss(OffloadEngine& e, const torch::Tensor& x) { return kModel.forward(e, x).pow(2).mean(); }

OffloadEngineOptions options(Tier params, Tier optimizer, const std::string& nvme) {
  OffloadEngineOptions o;
  o.param_home = params;
  o.optimizer_home = optimizer;
  o.nvme_path = nvme;
  o.sub_group_size = 24;  // several sub-groups per block
  o.buffer_count = 2;
  o.adam.weight_decay = 0.1;
  return o;
}

}  // namespace

TEST_CASE("engine training equals autograd + LibTorch AdamW for every home of params and optimizer") {
  test::TempDir dir("zinf-engine");
  // Reference: plain autograd over one leaf, torch::optim::AdamW, clipping.
  torch::Tensor w = initial().clone().requires_grad_(true);
  torch::optim::AdamW ref_opt({w}, torch::optim::AdamWOptions(0.05).weight_decay(0.1));
  std::vector<double> ref_losses;
  for (int s = 0; s < 8; ++s) {
    ref_opt.zero_grad();
    torch::Tensor l = reference_loss(w, batch(s)) * 4.0;  // a loss scale of 4
    l.backward();
    ref_losses.push_back(l.item<double>() / 4.0);
    w.mutable_grad().div_(4.0);
    torch::nn::utils::clip_grad_norm_(std::vector<torch::Tensor>{w}, 0.5);
    ref_opt.step();
  }
  const std::vector<std::pair<Tier, Tier>> homes = {{Tier::kDevice, Tier::kDevice}, {Tier::kCpu, Tier::kCpu},
                                                    {Tier::kNvme, Tier::kNvme}, {Tier::kDevice, Tier::kNvme},
                                                    {Tier::kNvme, Tier::kCpu}};
  for (const auto& [ph, oh] : homes) {
    const std::string homes_name = std::string(tier_name(ph)) + "/" + tier_name(oh);
    CAPTURE(homes_name);
    OffloadEngine e(options(ph, oh, dir.path()), kBlocks, initial());
    for (int s = 0; s < 8; ++s) {
      torch::Tensor l = engine_loss(e, batch(s)) * 4.0;
      l.backward();
      CHECK(l.item<double>() / 4.0 == doctest::Approx(ref_losses[s]).epsilon(1e-5));
      const StepResult r = e.step(0.05, 4.0, 0.5);
      CHECK_FALSE(r.skipped);
    }
    CHECK(e.step_count() == 8);
    // Clipping changes the gradient's scale from step to step, so a wrong
    // unscale/clip factor shows here (Adam's first steps barely see it).
    const double params_diff = (e.parameters() - w.detach()).abs().max().item<double>();
    CHECK(params_diff < 1e-5);
    const EngineState st = e.state();
    const double master_diff = (st.master - w.detach()).abs().max().item<double>();
    CHECK(master_diff < 1e-5);
    CHECK(torch::equal(st.master, e.parameters()));  // fp32 homes hold exactly the master weights
    CHECK(torch::equal(e.master_weights(), st.master));
    const auto c = e.counters();
    if (ph == Tier::kNvme || oh == Tier::kNvme) {
      CHECK(c.nvme_read_bytes > 0);
      CHECK(c.nvme_write_bytes > 0);
      CHECK_FALSE(e.swap_dir().empty());
    } else {
      CHECK(c.nvme_read_bytes == 0);
      CHECK(e.swap_dir().empty());
    }
    if (ph != Tier::kDevice) {
      CHECK(c.h2d_bytes >= 8 * 2 * 112 * 4);  // every block fetched for forward and backward
      // Each forward call prefetches the next call's blocks, each backward
      // call the previous call's, and (once a whole forward has been seen)
      // the last forward call its own blocks for the backward right after it.
      // Step 1 learns the schedule while running it: its forward (4 block
      // fetches) and the first backward call (2) wait, the other 2 backward
      // fetches hit. Later steps: only the first forward call waits (1 miss,
      // 7 hits).
      CHECK(c.prefetch_hits == 2 + 7 * 7);
      CHECK(c.fetch_misses == 6 + 7 * 1);
    } else {
      CHECK(c.prefetch_hits == 0);
    }
    if (oh != Tier::kDevice) CHECK(c.d2h_bytes == 8 * (112 + 40) * 4);  // the tied block's grad arrives twice
  }
}

TEST_CASE("an inf gradient skips the step and leaves weights and step count alone") {
  OffloadEngine e(options(Tier::kCpu, Tier::kCpu, ""), kBlocks, initial());
  const torch::Tensor before = e.parameters();
  torch::Tensor l = engine_loss(e, batch(0) * std::numeric_limits<float>::infinity());
  l.backward();
  const StepResult r = e.step(0.05, 1.0, 1.0);
  CHECK(r.skipped);
  CHECK(e.step_count() == 0);
  CHECK(torch::equal(e.parameters(), before));
  // and the next step works from clean gradients
  engine_loss(e, batch(1)).backward();
  CHECK_FALSE(e.step(0.05).skipped);
  CHECK(e.step_count() == 1);
}

TEST_CASE("restoring a saved state continues exactly where the run was") {
  test::TempDir dir("zinf-engine");
  auto train = [](OffloadEngine& e, int from, int to) {
    std::vector<double> losses;
    for (int s = from; s < to; ++s) {
      torch::Tensor l = engine_loss(e, batch(s));
      l.backward();
      losses.push_back(l.item<double>());
      e.step(0.05, 1.0, 1.0);
    }
    return losses;
  };
  OffloadEngine full(options(Tier::kNvme, Tier::kNvme, dir.path()), kBlocks, initial());
  const auto all = train(full, 0, 6);
  OffloadEngine first(options(Tier::kNvme, Tier::kNvme, dir.path()), kBlocks, initial());
  train(first, 0, 3);
  const EngineState saved = first.state();
  OffloadEngine resumed(options(Tier::kCpu, Tier::kNvme, dir.path()), kBlocks, torch::zeros({112}));
  resumed.load_state(saved);
  CHECK(resumed.step_count() == 3);
  const auto rest = train(resumed, 3, 6);
  for (int i = 0; i < 3; ++i) CHECK(rest[i] == doctest::Approx(all[3 + i]).epsilon(1e-6));
}

TEST_CASE("the delayed parameter update computes step t with the weights of step t-2") {
  test::TempDir dir("zinf-engine");
  // Reference: step 1 and 2 use the initial weights, step t >= 3 those after
  // step t-2's update; the updates themselves are AdamW on the master weights.
  torch::Tensor w = initial().clone().requires_grad_(false);
  torch::Tensor master = w.clone().requires_grad_(true);
  torch::optim::AdamW ref_opt({master}, torch::optim::AdamWOptions(0.05).weight_decay(0.1));
  std::vector<torch::Tensor> history = {master.detach().clone()};  // weights after 0, 1, 2, ... updates
  std::vector<double> ref_losses;
  for (int s = 0; s < 8; ++s) {
    torch::Tensor used = history[std::max(0, s - 1)].clone().requires_grad_(true);
    torch::Tensor l = reference_loss(used, batch(s));
    l.backward();
    ref_losses.push_back(l.item<double>());
    master.mutable_grad() = used.grad().clone();
    torch::nn::utils::clip_grad_norm_(std::vector<torch::Tensor>{master}, 0.5);
    ref_opt.step();
    history.push_back(master.detach().clone());
  }
  for (Tier optimizer : {Tier::kCpu, Tier::kNvme}) {
    CAPTURE(tier_name(optimizer));
    OffloadEngineOptions o = options(Tier::kCpu, optimizer, dir.path());
    o.delayed_update = true;
    OffloadEngine e(o, kBlocks, initial());
    for (int s = 0; s < 8; ++s) {
      torch::Tensor l = engine_loss(e, batch(s));
      l.backward();
      CHECK(l.item<double>() == doctest::Approx(ref_losses[s]).epsilon(1e-5));
      e.step(0.05, 1.0, 0.5);
    }
    e.synchronize();  // the last update becomes visible
    CHECK((e.parameters() - history.back()).abs().max().item<double>() < 1e-5);
    CHECK((e.master_weights() - history.back()).abs().max().item<double>() < 1e-5);
  }
  // Only with parameters and gradients in CPU memory and the optimizer off the device.
  OffloadEngineOptions bad = options(Tier::kNvme, Tier::kNvme, dir.path());
  bad.delayed_update = true;
  CHECK(test::error_of([&] { OffloadEngine(bad, kBlocks, initial()); }).find("needs parameters in CPU memory") !=
        std::string::npos);
}

TEST_CASE("gradients accumulated over micro-batches with the boundary hint equal the unhinted run") {
  for (Tier optimizer : {Tier::kCpu, Tier::kDevice}) {
    CAPTURE(tier_name(optimizer));
    OffloadEngine hinted(options(Tier::kCpu, optimizer, ""), kBlocks, initial());
    OffloadEngine plain(options(Tier::kCpu, optimizer, ""), kBlocks, initial());
    for (int s = 0; s < 4; ++s) {
      for (int m = 0; m < 3; ++m) {
        hinted.set_accumulation_boundary(m == 2);
        (engine_loss(hinted, batch(3 * s + m)) / 3.0).backward();
        (engine_loss(plain, batch(3 * s + m)) / 3.0).backward();
      }
      const StepResult a = hinted.step(0.05, 1.0, 0.5), b = plain.step(0.05, 1.0, 0.5);
      CHECK(a.grad_norm == doctest::Approx(b.grad_norm).epsilon(1e-9));
      CHECK(a.grad_norm > 0);
    }
    CHECK(torch::equal(hinted.parameters(), plain.parameters()));
  }
}

TEST_CASE("micro-batches summed on the device train exactly like the host's sum, and cross once per step") {
  test::TempDir dir("zinf-engine");
  struct Homes { Tier params, optimizer; bool nvme_grads; };
  for (const Homes& h : {Homes{Tier::kCpu, Tier::kCpu, false}, Homes{Tier::kDevice, Tier::kCpu, false},
                         Homes{Tier::kNvme, Tier::kNvme, true}, Homes{Tier::kCpu, Tier::kNvme, false}}) {
    for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
      // hint: the trainer's (false, false, true); none; or false throughout (the sum waits for step()).
      for (const std::string hint : {"boundary", "none", "never"}) {
        const std::string label = std::string(tier_name(h.params)) + "/" + tier_name(h.optimizer) +
                                  (h.nvme_grads ? "+nvme-grads " : " ") + c10::toString(dtype) + " hint " + hint;
        CAPTURE(label);
        OffloadEngineOptions o = options(h.params, h.optimizer, dir.path());
        o.dtype = dtype;
        o.gradients_on_nvme = h.nvme_grads;
        OffloadEngine on_host(o, kBlocks, initial());
        o.accumulate_on_device = true;
        OffloadEngine on_device(o, kBlocks, initial());
        for (int s = 0; s < 4; ++s) {
          for (int m = 0; m < 3; ++m) {
            // The host-summed reference without the hint when it is never lifted (it sums no norm then).
            if (hint == "boundary") on_host.set_accumulation_boundary(m == 2);
            if (hint != "none") on_device.set_accumulation_boundary(hint == "boundary" && m == 2);
            for (OffloadEngine* e : {&on_host, &on_device})
              (engine_loss(*e, batch(3 * s + m).to(dtype)) / 3.0).backward();
          }
          const StepResult a = on_host.step(0.05, 1.0, 0.5), b = on_device.step(0.05, 1.0, 0.5);
          CHECK(a.grad_norm > 0);
          CHECK(b.grad_norm == a.grad_norm);  // the same fp32 additions in the same order
        }
        CHECK(torch::equal(on_device.parameters(), on_host.parameters()));
        const std::int64_t e = c10::elementSize(dtype), steps = 4;
        CHECK(on_host.counters().d2h_bytes == steps * 3 * (112 + 40) * e);  // the tied block's grad arrives twice
        // Summed on the device: the fp32 sums cross once; the tied block's
        // second boundary use is added on the host. Without the hint nothing
        // is held back; with it never lifted both uses of the tied block sum
        // on the device.
        const std::int64_t want = hint == "boundary" ? steps * (112 * 4 + 40 * e)
                                  : hint == "none"   ? steps * 3 * (112 + 40) * e
                                                     : steps * 112 * 4;
        CHECK(on_device.counters().d2h_bytes == want);
      }
    }
  }
}

TEST_CASE("a hint lifted mid-step adds the later micro-batches on the host, not over a sum in flight") {
  // Boundary on the second of three micro-batches: the third must not
  // overwrite the device sum the second one is sending.
  OffloadEngineOptions o = options(Tier::kCpu, Tier::kCpu, "");
  OffloadEngine on_host(o, kBlocks, initial());
  o.accumulate_on_device = true;
  OffloadEngine on_device(o, kBlocks, initial());
  for (int s = 0; s < 3; ++s) {
    for (int m = 0; m < 3; ++m)
      for (OffloadEngine* e : {&on_host, &on_device}) {
        e->set_accumulation_boundary(m == 1);
        (engine_loss(*e, batch(3 * s + m)) / 3.0).backward();
      }
    on_host.step(0.05, 1.0, 0.0);  // no clipping: the norm of a lifted hint leaves out the last micro-batch
    on_device.step(0.05, 1.0, 0.0);
  }
  CHECK(torch::equal(on_device.parameters(), on_host.parameters()));
}

TEST_CASE("a home that is not none, cpu or nvme is refused by name") {
  CHECK(parse_tier("k", "nvme") == Tier::kNvme);
  CHECK_THROWS_WITH(parse_tier("zero_optimization.offload_param.device", "disk"),
                    doctest::Contains("zero_optimization.offload_param.device is 'disk'"));
}
