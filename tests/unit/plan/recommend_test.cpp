// plan: fit checks with the safety margin, and the fastest-that-fits choice.
#include <doctest/doctest.h>

#include "core/error.h"
#include "core/units.h"
#include "plan/recommend.h"

using namespace zinf;
using namespace zinf::plan;

namespace {

Inputs model(const std::string& name, int gpus) {
  Inputs in;
  in.model = *find_model(name);
  in.params = in.model.parameter_count();
  in.seq_len = in.model.seq_len;
  in.micro_batch = 1;
  in.gpus_per_node = gpus;
  return in;
}

Hardware node(double gpu_gib, double cpu_gib, std::optional<double> nvme_gib) {
  Hardware hw;
  hw.gpu_bytes = static_cast<std::int64_t>(gpu_gib * double(kGiB));
  hw.cpu_bytes = static_cast<std::int64_t>(cpu_gib * double(kGiB));
  if (nvme_gib) hw.nvme_free_bytes = static_cast<std::int64_t>(*nvme_gib * double(kGiB));
  return hw;
}

}  // namespace

TEST_CASE("a need fits only within capacity less the safety margin") {
  Need n;
  n.gpu_bytes = 90;
  n.cpu_bytes = 10;
  Hardware hw;
  hw.gpu_bytes = 100;
  hw.cpu_bytes = 100;
  CHECK(check_fit(n, hw, Target::kCuda).fits);  // 90 <= 100 x 0.9
  n.gpu_bytes = 91;
  const Fit f = check_fit(n, hw, Target::kCuda);
  CHECK_FALSE(f.fits);
  CHECK(f.known);
  CHECK(f.gpu_short == 1);
  CHECK(f.why.find("per GPU") != std::string::npos);
  // A CPU run ignores GPU memory.
  CHECK(check_fit(n, Hardware{std::nullopt, 100, std::nullopt}, Target::kCpu).fits);
}

TEST_CASE("unknown NVMe space matters only to options that use NVMe") {
  Need n;
  n.cpu_bytes = 1;
  Hardware hw{100, 100, std::nullopt};
  CHECK(check_fit(n, hw, Target::kCuda).fits);
  n.nvme_bytes = 1;
  const Fit f = check_fit(n, hw, Target::kCuda);
  CHECK_FALSE(f.fits);
  CHECK_FALSE(f.known);
  CHECK(f.why.find("--nvme-free-gb") != std::string::npos);
}

TEST_CASE("the recommendation is the fastest option that fits") {
  // 6.7b on 8 x 64 GiB: plain data parallel and ZeRO-1 (which keeps a full
  // fp32 gradient accumulator) do not fit, ZeRO-2 does.
  const Estimate e = estimate(model("6.7b", 8));
  const Recommendation r = recommend(e, node(64, 1024, 8000));
  REQUIRE(r.chosen);
  CHECK(e.rows[*r.chosen].option.name == "zero2");
  CHECK_FALSE(r.fits[0].fits);
  CHECK_FALSE(r.fits[1].fits);
  CHECK(r.explanation.find("recommended: zero2") == 0);
  CHECK(r.explanation.find("zero1 needs") != std::string::npos);  // says why the faster one was passed over
}

TEST_CASE("less GPU memory moves the choice down the speed order") {
  const Estimate e = estimate(model("6.7b", 1));
  const Recommendation big = recommend(e, node(80, 1024, 8000));
  const Recommendation small = recommend(e, node(12, 1024, 8000));
  REQUIRE(big.chosen);
  REQUIRE(small.chosen);
  CHECK(*small.chosen > *big.chosen);
  CHECK(e.rows[*small.chosen].option.zero_stage == 3);
}

TEST_CASE("with little CPU memory but NVMe, infinity on NVMe is chosen") {
  Inputs in = model("6.7b", 1);
  in.sub_group_size = 100000000;
  const Estimate e = estimate(in);
  const Recommendation r = recommend(e, node(24, 20, 2000));
  REQUIRE(r.chosen);
  CHECK(e.rows[*r.chosen].option.name == "infinity-nvme");
}

TEST_CASE("no recommendation when a faster option's fit cannot be judged") {
  const Estimate e = estimate(model("6.7b", 1));
  const Recommendation r = recommend(e, node(16, 96, std::nullopt));
  CHECK_FALSE(r.chosen);
  CHECK(r.unknown);
  CHECK_FALSE(r.nothing_fits);
  CHECK(r.explanation.find("infinity-nvme-optimizer") != std::string::npos);
}

TEST_CASE("when nothing fits it says how much more is needed and what would fit") {
  Inputs in = model("13b", 1);
  in.micro_batch = 8;
  const Estimate e = estimate(in);
  const Recommendation r = recommend(e, node(80, 128, 100));
  CHECK_FALSE(r.chosen);
  CHECK(r.nothing_fits);
  CHECK(r.shortfall.find("the closest option, ") == 0);
  CHECK(r.shortfall.find("more") != std::string::npos);
  CHECK(r.shortfall.find("would fit on") != std::string::npos);  // more nodes
  CHECK(r.shortfall.find("--nodes") != std::string::npos);
}

TEST_CASE("choose returns the recommended option and fails with exit code 3 when nothing fits") {
  const Choice c = choose(model("6.7b", 8), node(64, 1024, 8000));
  CHECK(c.option.name == "zero2");
  CHECK(c.need.gpu_bytes > 0);
  CHECK(c.explanation.find("recommended: zero2") == 0);
  Inputs big = model("13b", 1);
  big.micro_batch = 8;
  try {
    choose(big, node(80, 128, 100));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUnusable);
    CHECK(std::string(e.what()).find("nothing fits") == 0);
  }
  try {
    choose(model("6.7b", 1), node(16, 96, std::nullopt));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUnusable);
    CHECK(std::string(e.what()).find("unknown") != std::string::npos);
  }
}
