// zinf::optim — learning-rate schedules.
// Implements: DeepSpeed's five schedules with its formulas
// (deepspeed/runtime/lr_schedules.py), so a DeepSpeed config gives the same
// LR curve under zinf: WarmupLR (warmup, then constant), WarmupDecayLR
// (warmup, then linear decay to 0 at total_num_steps), WarmupCosineLR
// (warmup, then cosine decay to cos_min_ratio x lr), OneCycle (up from
// cycle_min_lr to cycle_max_lr and back, optionally in stairs, then decay)
// and LRRangeTest (LR growing linearly, or in stairs, from its minimum).
// Momentum is not scheduled (OneCycle's cycle_momentum is the config's to warn about).
#pragma once

#include <cstdint>
#include <string>

namespace zinf::optim {

struct LrSchedule {
  std::string type = "WarmupLR";  // WarmupLR | WarmupDecayLR | WarmupCosineLR | OneCycle | LRRangeTest
  double base_lr = 3e-4;          // optimizer lr (WarmupCosineLR scales it)
  double warmup_min_lr = 0;       // WarmupLR / WarmupDecayLR
  double warmup_max_lr = 3e-4;    // WarmupLR / WarmupDecayLR
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;   // WarmupDecayLR / WarmupCosineLR
  bool log_warmup = false;        // warmup_type "log"
  double warmup_min_ratio = 0;    // WarmupCosineLR
  double cos_min_ratio = 1e-4;    // WarmupCosineLR
  // OneCycle
  double cycle_min_lr = 0, cycle_max_lr = 0;
  double decay_lr_rate = 0;                // 0: cycle_min_lr after the cycle
  std::int64_t cycle_first_step_size = 2000;   // steps, > 0
  std::int64_t cycle_second_step_size = 2000;  // steps, >= 0
  std::int64_t cycle_first_stair_count = 0;    // 0 = smooth
  std::int64_t cycle_second_stair_count = 0;
  std::int64_t decay_step_size = 0;            // steps; 0 = no decay
  // LRRangeTest
  double range_min_lr = 1e-3, range_step_rate = 1.0;
  std::int64_t range_step_size = 2000;         // steps, > 0
  bool range_staircase = false;

  // LR for optimizer step `step` (0-based: the first step is 0). For
  // OneCycle and LRRangeTest it is the LR DeepSpeed's optimizer step `step`
  // uses: the scheduler's value after `step` calls of step(), its initial
  // value (cycle_min_lr, lr_range_test_min_lr) at step 0.
  double lr_at(std::int64_t step) const;

 private:
  double one_cycle_scale(std::int64_t it) const;
};

}  // namespace zinf::optim
