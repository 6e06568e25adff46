// zinf::optim — learning-rate schedules.
// Implements: DeepSpeed's WarmupLR (warmup, then constant), WarmupDecayLR
// (warmup, then linear decay to 0 at total_num_steps) and WarmupCosineLR
// (warmup, then cosine decay to cos_min_ratio x lr), with DeepSpeed's
// formulas, so a DeepSpeed config gives the same LR curve under zinf.
#pragma once

#include <cstdint>
#include <string>

namespace zinf::optim {

struct LrSchedule {
  std::string type = "WarmupLR";  // WarmupLR | WarmupDecayLR | WarmupCosineLR
  double base_lr = 3e-4;          // optimizer lr (WarmupCosineLR scales it)
  double warmup_min_lr = 0;       // WarmupLR / WarmupDecayLR
  double warmup_max_lr = 3e-4;    // WarmupLR / WarmupDecayLR
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;   // WarmupDecayLR / WarmupCosineLR
  bool log_warmup = false;        // warmup_type "log"
  double warmup_min_ratio = 0;    // WarmupCosineLR
  double cos_min_ratio = 1e-4;    // WarmupCosineLR

  // LR for optimizer step `step` (0-based: the first step is 0).
  double lr_at(std::int64_t step) const;
};

}  // namespace zinf::optim
