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

// ---------------------------------------------------------------- OneCycle
// Values worked by hand from DeepSpeed's lr_schedules.py: step k's LR is the
// scheduler's after k step() calls, so batch_iteration = k; first = 4 and
// second = 6 steps make total 10 and step_ratio 0.4.
namespace {
LrSchedule one_cycle() {
  LrSchedule s;
  s.type = "OneCycle";
  s.cycle_min_lr = 1e-4;
  s.cycle_max_lr = 1e-3;
  s.cycle_first_step_size = 4;
  s.cycle_second_step_size = 6;
  s.decay_step_size = 2;
  s.decay_lr_rate = 0.5;
  return s;
}
}  // namespace

TEST_CASE("OneCycle rises to cycle_max_lr over the first half and falls back over the second") {
  const LrSchedule s = one_cycle();
  CHECK(s.lr_at(0) == doctest::Approx(1e-4));    // x = 0: the initial lr, cycle_min_lr
  CHECK(s.lr_at(2) == doctest::Approx(5.5e-4));  // x = 0.2, scale 0.2 / 0.4 = 0.5
  CHECK(s.lr_at(4) == doctest::Approx(1e-3));    // x = 0.4: the peak
  CHECK(s.lr_at(7) == doctest::Approx(5.5e-4));  // x = 0.7, scale (0.7 - 1) / (0.4 - 1) = 0.5
  CHECK(s.lr_at(10) == doctest::Approx(1e-4));   // last_batch_iteration 9 < 10, bi = 10: x = 0
}

TEST_CASE("OneCycle decays cycle_min_lr / (1 + decay_lr_rate x interval) after the cycle") {
  LrSchedule s = one_cycle();
  CHECK(s.lr_at(11) == doctest::Approx(1e-4 / 1.25));  // interval (11 - 10) / 2 = 0.5
  CHECK(s.lr_at(14) == doctest::Approx(1e-4 / 2.0));   // interval 2
  s.decay_step_size = 0;  // no decay: cycle_min_lr for ever
  CHECK(s.lr_at(14) == doctest::Approx(1e-4));
  s.decay_step_size = 2;
  s.decay_lr_rate = 0;
  CHECK(s.lr_at(14) == doctest::Approx(1e-4));
}

TEST_CASE("OneCycle with stair counts moves in floor(position) / stairs steps") {
  LrSchedule s = one_cycle();
  s.cycle_first_stair_count = 2;
  s.cycle_second_stair_count = 3;
  CHECK(s.lr_at(1) == doctest::Approx(1e-4));               // position 1 x 2 / 4 = 0.5 -> 0
  CHECK(s.lr_at(3) == doctest::Approx(1e-4 + 9e-4 * 0.5));  // 3 x 2 / 4 = 1.5 -> 1 of 2
  CHECK(s.lr_at(6) == doctest::Approx(1e-4 + 9e-4 * 2.0 / 3.0));  // (10 - 6) x 3 / 6 = 2 of 3
  CHECK(s.lr_at(9) == doctest::Approx(1e-4));               // (10 - 9) x 3 / 6 = 0.5 -> 0
}

TEST_CASE("LRRangeTest grows min_lr x (1 + rate x steps / step_size), smoothly or in stairs") {
  LrSchedule s;
  s.type = "LRRangeTest";
  s.range_min_lr = 1e-3;
  s.range_step_size = 4;
  s.range_step_rate = 0.5;
  CHECK(s.lr_at(0) == doctest::Approx(1e-3));
  CHECK(s.lr_at(2) == doctest::Approx(1.25e-3));
  CHECK(s.lr_at(8) == doctest::Approx(2e-3));
  s.range_staircase = true;
  CHECK(s.lr_at(2) == doctest::Approx(1e-3));
  CHECK(s.lr_at(9) == doctest::Approx(2e-3));  // floor(9 / 4) = 2
}
