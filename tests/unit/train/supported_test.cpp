// train: the one place that refuses what stage none cannot train.
#include <doctest/doctest.h>

#include "core/error.h"
#include "train/trainer.h"

using namespace zinf;

TEST_CASE("ZeRO stages and offload are supported; gradients on NVMe are refused") {
  config::Settings s;
  CHECK_NOTHROW(train::check_supported(s));
  CHECK_FALSE(train::uses_offload_engine(s));
  s.zero_stage = 2;
  CHECK_FALSE(train::uses_offload_engine(s));  // one rank: stage none
  s.offload_optimizer.device = Tier::kCpu;
  CHECK(train::uses_offload_engine(s));         // ZeRO-Offload
  s.zero_stage = 3;
  s.offload_optimizer.device = Tier::kDevice;
  s.offload_param.device = Tier::kNvme;
  CHECK_NOTHROW(train::check_supported(s));
  CHECK(train::uses_offload_engine(s));
  s.offload_gradients_nvme = true;
  try {
    train::check_supported(s);
    FAIL("expected a refusal");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(std::string(e.what()).find("zinf.offload.gradients = nvme") != std::string::npos);
  }
}
