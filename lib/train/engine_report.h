// zinf::train — what a run through the ZeRO engine reports.
// Implements: EngineReport, which turns the engine's counters and step
// timeline into metrics.jsonl fields per step — bytes each tier moved
// (nvme_read_bytes / nvme_write_bytes cumulative over the run, *_step and
// h2d_bytes / d2h_bytes for the step), the NVMe GB/s achieved, and
// "timeline": where the step's time went (compute, h2d, d2h, gradient
// accumulation, CPU optimizer, NVMe waits, fetch waits, collectives, GPU
// idle) — and the run's totals and mean timeline for summary.json.
#pragma once

#include "config/json.h"
#include "zero/offload_engine.h"

namespace zinf::train {

class EngineReport {
 public:
  explicit EngineReport(zero::OffloadEngine& engine) : engine_(engine) {}

  // Adds this step's fields to `line`; step_s is the step's wall time.
  void add_step(config::Json& line, double step_s);
  // Leaves what moved since the last add_step (validation, a checkpoint) out
  // of the next step's bytes and timeline; the run's totals keep it.
  void skip_untimed();
  // Adds the run's totals to `summary`.
  void add_summary(config::Json& summary) const;

 private:
  zero::OffloadEngine& engine_;
  zero::TransferCounters last_;      // counters at the previous step
  zero::StepTimeline sum_;           // over the steps after the first
  double sum_step_s_ = 0;
  std::int64_t steps_ = 0;           // steps seen
};

}  // namespace zinf::train
