// train: the one place that refuses what stage none cannot train.
#include <doctest/doctest.h>

#include "core/error.h"
#include "train/trainer.h"

using namespace zinf;

TEST_CASE("ZeRO stages, offload and --optimize are refused until the engine is integrated") {
  config::Settings s;
  CHECK_NOTHROW(train::check_supported(s));
  s.zero_stage = 3;
  s.offload_param.device = config::Device::kNvme;
  try {
    train::check_supported(s);
    FAIL("expected a refusal");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(std::string(e.what()).find("zero_optimization.stage = 3, offload_param.device = nvme") != std::string::npos);
    CHECK(e.hint().find("--zero-stage none") != std::string::npos);
  }
  config::Settings o;
  o.optimize = true;
  CHECK_THROWS_WITH(train::check_supported(o), doctest::Contains("planner is not wired into zinf train yet"));
}
