// zinf::optim — DeepSpeed's DynamicLossScaler (deepspeed/runtime/fp16/loss_scaler.py).
#include "optim/loss_scaler.h"

#include <algorithm>
#include <cmath>

namespace zinf::optim {

LossScaler::LossScaler(const LossScalerOptions& options)
    : options_(options),
      scale_(options.fixed_scale > 0 ? options.fixed_scale : std::ldexp(1.0, options.initial_scale_power)),
      hysteresis_left_(options.hysteresis) {}

bool LossScaler::update(bool overflow) {
  if (options_.fixed_scale > 0) {
    ++iteration_;
    return !overflow;
  }
  if (overflow) {
    if (options_.hysteresis == 1 || hysteresis_left_ == 1)
      scale_ = std::max(scale_ / options_.scale_factor, options_.min_scale);
    else
      --hysteresis_left_;
    last_overflow_ = iteration_;
  } else {
    if (options_.consecutive_hysteresis) hysteresis_left_ = options_.hysteresis;
    if ((iteration_ - last_overflow_) % options_.scale_window == 0) {
      if (!options_.consecutive_hysteresis) hysteresis_left_ = options_.hysteresis;
      scale_ *= options_.scale_factor;
    }
  }
  ++iteration_;
  return !overflow;
}

void LossScaler::restore(const State& s) {
  scale_ = s.scale;
  iteration_ = s.iteration;
  last_overflow_ = s.last_overflow_iteration;
  hysteresis_left_ = s.hysteresis_left;
}

}  // namespace zinf::optim
