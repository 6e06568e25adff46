// zinf::optim — DeepSpeed's LR schedule formulas (deepspeed/runtime/lr_schedules.py): the warmup family, OneCycle, LRRangeTest.
#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace zinf::optim {
namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

// OneCycle's position in its cycle, in [0, 1]: DeepSpeed's _get_scale_factor
// for batch_iteration `it` (its last_batch_iteration + 1).
double LrSchedule::one_cycle_scale(std::int64_t it) const {
  const double first = double(cycle_first_step_size), second = double(cycle_second_step_size);
  const double total = first + second, step_ratio = first / total, bi = double(it);
  const double cycle = std::floor(1.0 + bi / total);
  const double x = 1.0 + bi / total - cycle;
  double scale;
  std::int64_t stairs;
  if (x <= step_ratio) {
    scale = x / step_ratio;
    stairs = cycle_first_stair_count;
  } else {
    scale = (x - 1.0) / (step_ratio - 1.0);
    stairs = cycle_second_stair_count;
  }
  if (stairs > 0) {
    const double in_cycle = std::fmod(bi, total);
    const double position = in_cycle <= first ? in_cycle * double(stairs) / first
                                              : (total - in_cycle) * double(stairs) / second;
    scale = std::floor(position) / double(stairs);
  }
  return scale;
}

double LrSchedule::lr_at(std::int64_t step) const {
  if (type == "OneCycle") {
    // DeepSpeed: last_batch_iteration = step - 1; the cycle while it is
    // below first + second step sizes, then the decay.
    const std::int64_t total = cycle_first_step_size + cycle_second_step_size;
    if (step - 1 < total) return cycle_min_lr + (cycle_max_lr - cycle_min_lr) * one_cycle_scale(step);
    if (decay_step_size == 0 || decay_lr_rate == 0) return cycle_min_lr;
    const double decay_interval = double(step - total) / double(decay_step_size);
    return cycle_min_lr / (1.0 + decay_lr_rate * decay_interval);
  }
  if (type == "LRRangeTest") {
    // DeepSpeed: interval (last_batch_iteration + 1) / step_size, floored in stairs.
    const double interval = double(step) / double(range_step_size);
    return range_min_lr * (1.0 + range_step_rate * (range_staircase ? std::floor(interval) : interval));
  }
  // Warmup progress in [0, 1]: linear step/warmup, or log(step+1)/log(warmup).
  auto warmup_gamma = [&]() -> double {
    if (step >= warmup_steps) return 1.0;
    if (log_warmup) return warmup_steps > 1 ? std::log(double(step + 1)) / std::log(double(warmup_steps)) : 1.0;
    return double(step) / double(warmup_steps);
  };
  if (type == "WarmupCosineLR") {
    double ratio;
    if (step < warmup_steps) {
      ratio = warmup_min_ratio + (1.0 - warmup_min_ratio) * warmup_gamma();
    } else {
      const double real_step = double(step - warmup_steps + 1);
      const double real_total = double(std::max<std::int64_t>(1, total_steps - warmup_steps));
      const double cosine = (1.0 + std::cos(kPi * std::min(1.0, real_step / real_total))) / 2.0;
      ratio = std::max(0.0, cos_min_ratio + (1.0 - cos_min_ratio) * cosine);
    }
    return base_lr * ratio;
  }
  double gamma = warmup_gamma();
  if (type == "WarmupDecayLR" && step >= warmup_steps) {
    gamma = std::max(0.0, double(total_steps - step) / double(std::max<std::int64_t>(1, total_steps - warmup_steps)));
  }
  return warmup_min_lr + (warmup_max_lr - warmup_min_lr) * gamma;
}

}  // namespace zinf::optim
