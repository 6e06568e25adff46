// zinf::train — metrics and summary fields of runs through the ZeRO engine.
#include "train/engine_report.h"

#include <algorithm>

#include "core/tier.h"

namespace zinf::train {
namespace {

config::Json timeline_json(const zero::StepTimeline& t, double step_s) {
  return {{"step_s", step_s},
          {"compute_s", t.compute_s},
          {"gpu_idle_s", std::max(0.0, step_s - t.compute_s)},
          {"h2d_s", t.h2d_s},
          {"d2h_s", t.d2h_s},
          {"grad_accumulate_s", t.grad_accumulate_s},
          {"optimizer_s", t.optimizer_s},
          {"nvme_wait_s", t.nvme_wait_s},
          {"fetch_wait_s", t.fetch_wait_s},
          {"comm_s", t.comm_s}};
}

}  // namespace

void EngineReport::add_step(config::Json& line, double step_s) {
  const zero::TransferCounters c = engine_.counters();
  line["nvme_read_bytes"] = c.nvme_read_bytes;
  line["nvme_write_bytes"] = c.nvme_write_bytes;
  line["nvme_read_bytes_step"] = c.nvme_read_bytes - last_.nvme_read_bytes;
  line["nvme_write_bytes_step"] = c.nvme_write_bytes - last_.nvme_write_bytes;
  line["h2d_bytes"] = c.h2d_bytes - last_.h2d_bytes;
  line["d2h_bytes"] = c.d2h_bytes - last_.d2h_bytes;
  line["nvme_gbps"] =
      double(c.nvme_read_bytes - last_.nvme_read_bytes + c.nvme_write_bytes - last_.nvme_write_bytes) / step_s / 1e9;
  last_ = c;
  const zero::StepTimeline t = engine_.take_timeline();
  line["timeline"] = timeline_json(t, step_s);
  if (steps_++ > 0) {  // the first step learns the schedule and warms the allocator
    sum_.compute_s += t.compute_s;
    sum_.h2d_s += t.h2d_s;
    sum_.d2h_s += t.d2h_s;
    sum_.grad_accumulate_s += t.grad_accumulate_s;
    sum_.optimizer_s += t.optimizer_s;
    sum_.nvme_wait_s += t.nvme_wait_s;
    sum_.fetch_wait_s += t.fetch_wait_s;
    sum_.comm_s += t.comm_s;
    sum_step_s_ += step_s;
  }
}

void EngineReport::skip_untimed() {
  last_ = engine_.counters();
  engine_.take_timeline();
}

void EngineReport::add_summary(config::Json& summary) const {
  const zero::TransferCounters c = engine_.counters();
  summary["nvme_read_bytes"] = c.nvme_read_bytes;
  summary["nvme_write_bytes"] = c.nvme_write_bytes;
  summary["nvme_peak_bytes"] = engine_.nvme_reserved_bytes();
  summary["h2d_bytes"] = c.h2d_bytes;
  summary["d2h_bytes"] = c.d2h_bytes;
  summary["prefetch_hits"] = c.prefetch_hits;
  summary["fetch_misses"] = c.fetch_misses;
  summary["offload_param"] = tier_name(engine_.options().param_home);
  summary["offload_optimizer"] = tier_name(engine_.options().optimizer_home);
  summary["offload_gradients"] = engine_.options().gradients_on_nvme ? "nvme" : "none";
  summary["device_grad_accumulation"] = engine_.options().accumulate_on_device;
  summary["host_state_bytes"] = engine_.host_state_bytes();
  summary["pinned_pool_bytes"] = engine_.pinned_pool_bytes();
  if (steps_ > 1) {
    const double n = double(steps_ - 1);
    zero::StepTimeline mean = sum_;
    for (double* f : {&mean.compute_s, &mean.h2d_s, &mean.d2h_s, &mean.grad_accumulate_s, &mean.optimizer_s,
                      &mean.nvme_wait_s, &mean.fetch_wait_s, &mean.comm_s})
      *f /= n;
    summary["timeline_mean"] = timeline_json(mean, sum_step_s_ / n);
  }
}

}  // namespace zinf::train
