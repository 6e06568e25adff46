// zinf::optim — dynamic loss scaling for fp16.
// Implements: DeepSpeed's DynamicLossScaler: start at 2^initial_scale_power,
// halve (down to min_scale) after `hysteresis` overflowing steps, double after
// `scale_window` steps without overflow; a step with an overflow is skipped.
// A fixed scale (loss_scale > 0) never changes.
#pragma once

#include <cstdint>

namespace zinf::optim {

struct LossScalerOptions {
  double fixed_scale = 0;          // > 0: static scaling
  int initial_scale_power = 16;
  std::int64_t scale_window = 1000;
  std::int64_t hysteresis = 2;
  bool consecutive_hysteresis = false;
  double min_scale = 1;
  double scale_factor = 2;
};

class LossScaler {
 public:
  explicit LossScaler(const LossScalerOptions& options);

  double scale() const { return scale_; }
  // Records one optimizer step; `overflow` = some gradient was inf/NaN.
  // Returns true when the step should be applied (no overflow).
  bool update(bool overflow);

  // For checkpoints.
  struct State {
    double scale;
    std::int64_t iteration, last_overflow_iteration, hysteresis_left;
  };
  State state() const { return {scale_, iteration_, last_overflow_, hysteresis_left_}; }
  void restore(const State& s);

 private:
  LossScalerOptions options_;
  double scale_;
  std::int64_t iteration_ = 0;
  std::int64_t last_overflow_ = -1;
  std::int64_t hysteresis_left_;
};

}  // namespace zinf::optim
