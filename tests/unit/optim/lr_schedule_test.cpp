// optim: LR schedules follow DeepSpeed's formulas; loss scaler follows DynamicLossScaler.
#include <doctest/doctest.h>

#include "optim/loss_scaler.h"
#include "optim/lr_schedule.h"

using namespace zinf::optim;

TEST_CASE("WarmupLR ramps linearly then stays at the peak") {
  LrSchedule s;
  s.type = "WarmupLR";
  s.warmup_min_lr = 0;
  s.warmup_max_lr = 1e-3;
  s.warmup_steps = 10;
  CHECK(s.lr_at(0) == doctest::Approx(0.0));
  CHECK(s.lr_at(5) == doctest::Approx(5e-4));
  CHECK(s.lr_at(10) == doctest::Approx(1e-3));
  CHECK(s.lr_at(1000) == doctest::Approx(1e-3));
}

TEST_CASE("WarmupLR without warmup is constant from step 0") {
  LrSchedule s;
  s.warmup_max_lr = 2e-4;
  CHECK(s.lr_at(0) == doctest::Approx(2e-4));
  CHECK(s.lr_at(7) == doctest::Approx(2e-4));
}

TEST_CASE("WarmupDecayLR decays linearly to zero at total_steps") {
  LrSchedule s;
  s.type = "WarmupDecayLR";
  s.warmup_max_lr = 1.0;
  s.warmup_steps = 10;
  s.total_steps = 110;
  CHECK(s.lr_at(10) == doctest::Approx(1.0));
  CHECK(s.lr_at(60) == doctest::Approx(0.5));
  CHECK(s.lr_at(110) == doctest::Approx(0.0));
  CHECK(s.lr_at(200) == doctest::Approx(0.0));
}

TEST_CASE("WarmupCosineLR follows the cosine to cos_min_ratio") {
  LrSchedule s;
  s.type = "WarmupCosineLR";
  s.base_lr = 1.0;
  s.warmup_steps = 0;
  s.total_steps = 100;
  s.cos_min_ratio = 0.1;
  CHECK(s.lr_at(49) == doctest::Approx(0.55).epsilon(1e-6));  // halfway: 0.1 + 0.9 * 0.5
  CHECK(s.lr_at(99) == doctest::Approx(0.1));
  CHECK(s.lr_at(0) < 1.0);
}

TEST_CASE("log warmup reaches the peak at warmup_steps") {
  LrSchedule s;
  s.warmup_max_lr = 1.0;
  s.warmup_steps = 100;
  s.log_warmup = true;
  CHECK(s.lr_at(0) == doctest::Approx(0.0));
  CHECK(s.lr_at(9) == doctest::Approx(0.5));  // log(10)/log(100)
}

TEST_CASE("dynamic loss scaler halves after hysteresis overflows and doubles after a clean window") {
  LossScalerOptions o;
  o.initial_scale_power = 4;  // 16
  o.hysteresis = 2;
  o.scale_window = 3;
  LossScaler ls(o);
  CHECK(ls.scale() == 16);
  CHECK_FALSE(ls.update(true));  // first overflow: hysteresis absorbs it
  CHECK(ls.scale() == 16);
  CHECK_FALSE(ls.update(true));  // second: halve
  CHECK(ls.scale() == 8);
  CHECK(ls.update(false));
  CHECK(ls.update(false));
  CHECK(ls.scale() == 8);
  CHECK(ls.update(false));  // 3 clean steps since the overflow
  CHECK(ls.scale() == 16);
}

TEST_CASE("static loss scale never changes") {
  LossScalerOptions o;
  o.fixed_scale = 128;
  LossScaler ls(o);
  CHECK_FALSE(ls.update(true));
  CHECK(ls.update(false));
  CHECK(ls.scale() == 128);
}
