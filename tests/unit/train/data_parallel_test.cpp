// train: the shard arithmetic; stage none, ZeRO-1 and ZeRO-2 on two real
// ranks (forked processes, Gloo on loopback) update the model exactly as one
// rank does with the summed gradient, each keeping only what its stage
// allows (ZeRO-2: no full-size fp32 gradient, buckets of the configured
// size); their checkpoint ranges tile the model; and the configuration
// comparison names the first differing key.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>

#include "comm/communicator.h"
#include "config/json.h"
#include "model/gpt.h"
#include "model/layout.h"
#include "support/test_util.h"
#include "optim/adamw_tensor.h"
#include "train/data_parallel.h"
#include "train/distributed.h"
#include "unit/model/torch_doctest.h"

using namespace zinf;
using namespace zinf::train;

namespace {

// Runs body(comm) in `world` forked ranks; returns how many failed (a
// failing rank prints why on stderr).
int run_ranks(int world, const std::function<bool(comm::Communicator&)>& body) {
  const int port = test::free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      bool ok = false;
      try {
        // The parent may have started OpenMP threads, which do not survive fork.
        torch::set_num_threads(1);
        comm::Rendezvous rdv;
        rdv.rank = r;
        rdv.world_size = world;
        rdv.master_port = port;
        rdv.timeout = std::chrono::seconds(30);
        auto c = comm::Communicator::create(rdv, comm::Backend::kGloo);
        ok = body(*c);
        c->barrier();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
      }
      ::_exit(ok ? 0 : 1);
    }
    pids.push_back(pid);
  }
  int failed = 0;
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  return failed;
}

bool expect(bool ok, int rank, const std::string& what) {
  if (!ok) std::fprintf(stderr, "rank %d: %s\n", rank, what.c_str());
  return ok;
}

const ModelSpec kSpec{"custom", 16, 4, 8, 1, 2};  // 1,048 parameters: shards of 576 on 2 ranks
constexpr double kLr = 1e-2;
// zinf's recipe: no decay on norms, biases and embeddings, ranges that cross the shards.
const optim::AdamWOptions kAdam{0.9, 0.95, 1e-8, 0.1, true, model::no_decay_ranges(model::model_layout(kSpec))};

// Micro-batch `micro`'s gradient on rank `rank`: values a bf16 holds exactly.
torch::Tensor gradient(std::int64_t numel, int rank, int micro) {
  return (torch::arange(numel, torch::kFloat32).remainder(13) - 6 + 3 * rank + micro) / 64;
}

// Two micro-batches on `world` ranks through DataParallel, then one step;
// checks the model's parameters against one AdamW over the gradient summed
// over ranks and micro-batches, and what the rank keeps.
bool one_step_matches(comm::Communicator& c, int stage, torch::Dtype dtype, std::int64_t bucket) {
  const int r = c.rank(), world = c.world_size();
  const RankGroup group(&c, torch::kCPU);
  const ShardPlan plan(kSpec.parameter_count(), world);
  model::Gpt model({kSpec, dtype, torch::kCPU, false, plan.padded_numel()});
  DataParallel dp(model, group, stage, bucket, kAdam);
  const torch::Tensor w0 = model::Gpt::initial_weights(kSpec, 3);
  dp.init(w0);
  const std::int64_t n = model.numel();
  bool ok = true;
  for (int micro = 0; micro < 2; ++micro) {
    torch::NoGradGuard no_grad;
    model.grads().add_(gradient(n, r, micro));  // what backward does: add into the flat gradient
    dp.accumulate();
  }
  torch::Tensor& grad = dp.reduce();
  torch::Tensor sq = dp.square_sum(grad);
  c.all_reduce_sum(sq);
  dp.step(grad, kLr);
  dp.zero_grads();

  // One rank's view: the summed gradient and one AdamW over everything.
  torch::Tensor total = torch::zeros({n});
  for (int q = 0; q < world; ++q)
    for (int micro = 0; micro < 2; ++micro) total += gradient(n, q, micro);
  torch::Tensor ref = w0.clone();
  optim::AdamWFlat ref_opt(ref, kAdam);
  ref_opt.step(total, kLr);
  ok &= expect(std::abs(sq.item<double>() - total.square().sum().item<double>()) < 1e-3 * total.square().sum().item<double>(),
               r, "the ranks' square sums add up to the global squared norm");
  if (dtype == torch::kFloat32)
    ok &= expect(torch::allclose(model.params(), ref, 1e-6, 1e-7), r, "fp32 parameters equal one rank's step");
  else
    ok &= expect(torch::allclose(model.params().to(torch::kFloat32), ref.to(dtype).to(torch::kFloat32), 1e-2, 1e-6), r,
                 "low-precision parameters equal one rank's step, rounded");
  ok &= expect(model.padded_params().narrow(0, n, plan.padded_numel() - n).abs().sum().item<double>() == 0, r,
               "the padding stays zero");
  ok &= expect(model.grads().abs().sum().item<double>() == 0, r, "zero_grads clears the model's gradient");

  // What the rank keeps.
  const std::int64_t shard = plan.shard_numel;
  if (stage == 0) {
    ok &= expect(dp.master_numel() == n && dp.moment_numel() == n, r, "none: full master and moments");
    ok &= expect(dp.accumulator_numel() == n || dp.accumulator_numel() == plan.padded_numel(), r, "none: full gradient");
  } else {
    ok &= expect(dp.master_numel() == shard && dp.moment_numel() == shard, r,
                 "zero" + std::to_string(stage) + ": master and moments of the shard only (" +
                     std::to_string(dp.master_numel()) + ")");
  }
  if (stage == 1) ok &= expect(dp.accumulator_numel() == plan.padded_numel(), r, "zero1: a full gradient");
  if (stage == 2) {
    ok &= expect(dp.accumulator_numel() == shard, r,
                 "zero2: the fp32 gradient is shard-sized, got " + std::to_string(dp.accumulator_numel()));
    ok &= expect(dp.bucket_numel() > 0 && dp.bucket_numel() <= bucket, r,
                 "zero2: one bucket of at most reduce_bucket_size, got " + std::to_string(dp.bucket_numel()));
  }
  return ok;
}

}  // namespace

TEST_CASE("shard plans pad the vector to equal, aligned shards and own only real elements") {
  CHECK(kSpec.parameter_count() == 1048);
  CHECK(ShardPlan(1048, 2).shard_numel == 576);
  const ShardPlan a(1000, 3);
  CHECK(a.shard_numel == 384);  // ceil(1000 / 3) = 334, rounded up to 64
  CHECK(a.padded_numel() == 1152);
  CHECK(a.shard(1).begin == 384);
  CHECK(a.owned(2).begin == 768);
  CHECK(a.owned(2).count == 232);
  const ShardPlan b(100, 4);  // ranks 2 and 3 hold only padding
  CHECK(b.owned(1).begin == 64);
  CHECK(b.owned(1).count == 36);
  CHECK(b.owned(2).count == 0);
  CHECK(b.owned(3).count == 0);
  const ShardPlan one(1000, 1);
  CHECK(one.owned(0).count == 1000);
  CHECK(one.padded_numel() == 1024);
  CHECK(test::error_of([] { ShardPlan bad(10, 0); }).find("over 0 ranks") != std::string::npos);
}

TEST_CASE("on one rank every stage is stage none: no collectives, everything held") {
  const RankGroup group(nullptr, torch::kCPU);
  const ShardPlan plan(kSpec.parameter_count(), 1);
  model::Gpt model({kSpec, torch::kFloat32, torch::kCPU, false, plan.padded_numel()});
  DataParallel dp(model, group, 2, 100, kAdam);
  CHECK(dp.stage() == 0);
  CHECK(dp.master_numel() == model.numel());
  CHECK(dp.owned_ranges().size() == 1);
  CHECK(dp.owned_ranges()[0].count == model.numel());
}

TEST_CASE("stage none, ZeRO-1 and ZeRO-2 on two ranks step exactly as one rank with the summed gradient") {
  if (!comm::gloo_available()) {
    MESSAGE("skipped: this build has no Gloo backend");
    return;
  }
  for (int stage : {0, 1, 2}) {
    CAPTURE(stage);
    CHECK(run_ranks(2, [&](comm::Communicator& c) { return one_step_matches(c, stage, torch::kFloat32, 100); }) == 0);
  }
}

TEST_CASE("ZeRO-1 and ZeRO-2 in bf16 reduce in fp32 and gather the bf16 parameters") {
  if (!comm::gloo_available()) {
    MESSAGE("skipped: this build has no Gloo backend");
    return;
  }
  for (int stage : {0, 1, 2}) {
    CAPTURE(stage);
    CHECK(run_ranks(2, [&](comm::Communicator& c) { return one_step_matches(c, stage, torch::kBFloat16, 64); }) == 0);
  }
}

TEST_CASE("ZeRO-2 keeps no full-size fp32 gradient on three ranks, whatever the bucket size") {
  if (!comm::gloo_available()) {
    MESSAGE("skipped: this build has no Gloo backend");
    return;
  }
  // A bucket larger than the shard is clamped to one piece per shard.
  for (std::int64_t bucket : {7, 3000}) {
    CAPTURE(bucket);
    CHECK(run_ranks(3, [&](comm::Communicator& c) { return one_step_matches(c, 2, torch::kFloat32, bucket); }) == 0);
  }
}

TEST_CASE("the ranks' checkpoint ranges tile the model, and a state saved on two ranks loads on two others") {
  if (!comm::gloo_available()) {
    MESSAGE("skipped: this build has no Gloo backend");
    return;
  }
  for (int stage : {0, 2}) {
    CAPTURE(stage);
    CHECK(run_ranks(2, [&](comm::Communicator& c) {
      const int r = c.rank();
      const RankGroup group(&c, torch::kCPU);
      const ShardPlan plan(kSpec.parameter_count(), 2);
      model::Gpt model({kSpec, torch::kFloat32, torch::kCPU, false, plan.padded_numel()});
      DataParallel dp(model, group, stage, 100, kAdam);
      const std::int64_t n = model.numel();
      bool ok = expect(dp.owned_ranges().size() == 1 && dp.owned_ranges()[0].begin == (r == 0 ? 0 : plan.shard_numel) &&
                           dp.owned_ranges()[0].end() == (r == 0 ? plan.shard_numel : n),
                       r, "owned range is the rank's part of [0, n)");
      // A source that serves f(i) = i for master, 2i for m, 3i for v.
      const StateSource source = [](const FlatRange& range, float* p, float* m, float* v) {
        for (std::int64_t i = 0; i < range.count; ++i) {
          p[i] = float(range.begin + i);
          m[i] = 2.f * float(range.begin + i);
          v[i] = 3.f * float(range.begin + i);
        }
      };
      dp.load_state(source, 4, /*chunk=*/100);
      ok &= expect(dp.step_count() == 4, r, "step count restored");
      ok &= expect(torch::equal(model.params(), torch::arange(n, torch::kFloat32)), r,
                   "every rank's model has the whole vector after load");
      std::int64_t seen = 0;
      dp.save_state([&](const FlatRange& range, const float* p, const float* m, const float* v) {
        for (std::int64_t i = 0; i < range.count; ++i)
          ok &= p[i] == float(range.begin + i) && m[i] == 2.f * float(range.begin + i) && v[i] == 3.f * float(range.begin + i);
        seen += range.count;
      }, /*chunk=*/100);
      ok &= expect(seen == dp.owned_ranges()[0].count, r, "save streams exactly the owned range");
      return ok;
    }) == 0);
  }
}

TEST_CASE("the first differing configuration key is named with both values") {
  const config::Json a = config::Json::parse(R"({"train_batch_size": 8, "zero_optimization": {"stage": 2,
      "offload_param": {"device": "none"}}, "zinf": {"train": {"seed": 1}}})");
  CHECK_FALSE(first_difference(a, a).has_value());
  config::Json b = a;
  b["zero_optimization"]["stage"] = 1;
  b["zinf"]["train"]["seed"] = 2;
  auto d = first_difference(a, b);
  REQUIRE(d.has_value());
  CHECK(d->path == "zero_optimization.stage");
  CHECK(d->reference == "2");
  CHECK(d->ours == "1");
  config::Json c = a;
  c["zero_optimization"].erase("offload_param");
  d = first_difference(a, c);
  REQUIRE(d.has_value());
  CHECK(d->path == "zero_optimization.offload_param");
  CHECK(d->ours == "(not set)");
  config::Json e = a;
  e["zinf"]["train"]["extra"] = "x";
  d = first_difference(a, e);
  REQUIRE(d.has_value());
  CHECK(d->path == "zinf.train.extra");
  CHECK(d->reference == "(not set)");
  CHECK(d->ours == "\"x\"");
}
