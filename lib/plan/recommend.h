// zinf::plan — does an option fit, and which one to use.
// Implements: the fit check of an estimate against the hardware (GPU memory
// per GPU, CPU memory per node, free NVMe space per node) with a named safety
// margin, and the recommendation: the fastest standard option that fits. When
// nothing fits it says how much more of which memory the closest option needs
// and what would fit (more nodes, or micro-batch 1 with checkpointing).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "plan/estimate.h"

namespace zinf::plan {

// Fraction of every tier left free when judging a fit: the caching allocator's
// fragmentation, pinned-page rounding, the OS and page cache, and the
// estimate's own error (the target is 10% on GPU, 15% on CPU).
constexpr double kSafetyMargin = 0.10;

// What may be used of `capacity` bytes: capacity less kSafetyMargin.
std::int64_t usable_bytes(std::int64_t capacity);
// The margin for people: "10%".
std::string safety_margin_text();

struct Hardware {
  std::optional<std::int64_t> gpu_bytes;        // memory of one GPU
  std::optional<std::int64_t> cpu_bytes;        // CPU memory per node zinf may use
  std::optional<std::int64_t> nvme_free_bytes;  // free space under the NVMe path, per node
};

struct Fit {
  bool fits = false;      // every tier used is known and within capacity x (1 - margin)
  bool known = true;      // false when a tier the option uses has no known capacity
  std::int64_t gpu_short = 0, cpu_short = 0, nvme_short = 0;  // bytes more needed; 0 when enough
  std::string why;        // empty when it fits: "needs 81.20 GiB per GPU, limit 71.53 GiB"
};

// What this machine has: the smallest detected GPU, CPU memory available now
// (MemAvailable), and free space on the filesystem holding `nvme_path` (its
// nearest existing ancestor); unset where there is nothing to detect.
Hardware detect_hardware(const std::string& nvme_path);

Fit check_fit(const Need& need, const Hardware& hw, Target target);

struct Recommendation {
  std::vector<Fit> fits;              // one per Estimate row
  std::optional<std::size_t> chosen;  // index into Estimate::rows of the fastest that fits
  bool unknown = false;               // no choice: a faster option's fit cannot be judged
  bool nothing_fits = false;          // every option was judged and none fits
  std::string explanation;            // one line for people
  std::string shortfall;              // nothing_fits: how much more is needed, and what would fit
};

Recommendation recommend(const Estimate& e, const Hardware& hw);

// For `zinf train --optimize`: the recommended option for `in` on `hw`, its
// need and the one-line explanation. Throws zinf::Error with exit code 3
// (unusable) when nothing fits (message: the shortfall and what would fit) or
// when the choice cannot be judged (message: which capacity is unknown).
struct Choice {
  Option option;
  Need need;
  std::string explanation;
};
Choice choose(const Inputs& in, const Hardware& hw);

}  // namespace zinf::plan
