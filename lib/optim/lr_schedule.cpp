// zinf::optim — DeepSpeed's LR schedule formulas (deepspeed/runtime/lr_schedules.py).
#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace zinf::optim {
namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

double LrSchedule::lr_at(std::int64_t step) const {
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
