// zinf::plan — fit checks and the recommendation (see recommend.h).
#include "plan/recommend.h"

#include <cmath>

#include "core/error.h"
#include "core/fs.h"
#include "core/units.h"
#include "hw/machine.h"

namespace zinf::plan {

std::int64_t usable_bytes(std::int64_t capacity) {
  return static_cast<std::int64_t>(std::floor(static_cast<double>(capacity) * (1.0 - kSafetyMargin)));
}

std::string safety_margin_text() { return std::to_string(static_cast<int>(std::lround(kSafetyMargin * 100))) + "%"; }

namespace {

// Judges one tier; appends to `why` and returns the shortfall.
std::int64_t judge(std::int64_t need, const std::optional<std::int64_t>& capacity, const std::string& tier,
                   const std::string& unknown_hint, Fit& fit) {
  if (need <= 0) return 0;
  auto add = [&](const std::string& s) { fit.why += (fit.why.empty() ? "" : "; ") + s; };
  if (!capacity) {
    fit.known = false;
    add(tier + " unknown (" + unknown_hint + ")");
    return 0;
  }
  const std::int64_t limit = usable_bytes(*capacity);
  if (need <= limit) return 0;
  add("needs " + format_bytes(double(need)) + " " + tier + ", limit " + format_bytes(double(limit)) + " (" +
      format_bytes(double(*capacity)) + " less " + safety_margin_text() + ")");
  return need - limit;
}

bool any_fits(const Estimate& e, const Hardware& hw, std::string* which) {
  for (const auto& row : e.rows) {
    if (check_fit(row.need, hw, e.inputs.target).fits) {
      *which = row.option.name;
      return true;
    }
  }
  return false;
}

}  // namespace

Hardware detect_hardware(const std::string& nvme_path) {
  Hardware hw;
  for (const auto& g : hw::detect_gpus())
    if (!hw.gpu_bytes || g.total_bytes < *hw.gpu_bytes) hw.gpu_bytes = g.total_bytes;
  const hw::Memory mem = hw::detect_memory();
  if (mem.available_bytes > 0) hw.cpu_bytes = mem.available_bytes;
  if (!nvme_path.empty()) hw.nvme_free_bytes = fs::free_bytes(fs::nearest_existing(nvme_path));
  return hw;
}

Fit check_fit(const Need& need, const Hardware& hw, Target target) {
  Fit fit;
  if (target == Target::kCuda)
    fit.gpu_short = judge(need.gpu_bytes, hw.gpu_bytes, "per GPU", "pass --gpu-memory-gb", fit);
  fit.cpu_short = judge(need.cpu_bytes, hw.cpu_bytes, "CPU memory per node", "pass --cpu-memory-gb", fit);
  fit.nvme_short = judge(need.nvme_bytes, hw.nvme_free_bytes, "NVMe per node",
                         "pass --nvme-offload-path (zinf estimate also takes --nvme-free-gb)", fit);
  fit.fits = fit.known && fit.gpu_short == 0 && fit.cpu_short == 0 && fit.nvme_short == 0;
  return fit;
}

Recommendation recommend(const Estimate& e, const Hardware& hw) {
  Recommendation r;
  for (const auto& row : e.rows) r.fits.push_back(check_fit(row.need, hw, e.inputs.target));
  for (std::size_t i = 0; i < e.rows.size(); ++i) {
    if (r.fits[i].fits) {
      r.chosen = i;
      break;
    }
    if (!r.fits[i].known) {
      r.unknown = true;
      r.explanation = "no recommendation: cannot tell whether " + e.rows[i].option.name + " fits: " + r.fits[i].why;
      return r;
    }
  }
  if (r.chosen) {
    const std::size_t i = *r.chosen;
    r.explanation = "recommended: " + e.rows[i].option.name + ", the fastest option that fits with " +
                    safety_margin_text() + " of each memory kept free";
    if (i > 0) r.explanation += "; " + e.rows[i - 1].option.name + " " + r.fits[i - 1].why;
    return r;
  }

  // Nothing fits: the closest option by relative shortfall, and what would fit.
  r.nothing_fits = true;
  std::size_t best = 0;
  double best_score = 1e300;
  for (std::size_t i = 0; i < e.rows.size(); ++i) {
    const Fit& f = r.fits[i];
    double score = 0;
    if (hw.gpu_bytes && *hw.gpu_bytes > 0) score += double(f.gpu_short) / double(*hw.gpu_bytes);
    if (hw.cpu_bytes && *hw.cpu_bytes > 0) score += double(f.cpu_short) / double(*hw.cpu_bytes);
    if (hw.nvme_free_bytes && *hw.nvme_free_bytes > 0) score += double(f.nvme_short) / double(*hw.nvme_free_bytes);
    if (score < best_score) {
      best_score = score;
      best = i;
    }
  }
  const Fit& f = r.fits[best];
  std::vector<std::string> more;
  if (f.gpu_short > 0) more.push_back(format_bytes(double(f.gpu_short)) + " more memory per GPU");
  if (f.cpu_short > 0) more.push_back(format_bytes(double(f.cpu_short)) + " more CPU memory per node");
  if (f.nvme_short > 0) more.push_back(format_bytes(double(f.nvme_short)) + " more free NVMe space per node");
  std::string joined;
  for (const auto& m : more) joined += (joined.empty() ? "" : " and ") + m;
  r.explanation = "nothing fits this hardware with " + safety_margin_text() + " of each memory kept free";
  r.shortfall = "the closest option, " + e.rows[best].option.name + ", needs " + joined + " (" + f.why + ")";

  std::string which;
  for (int k = 2; k <= 1024 && e.inputs.ranks() * k <= kMaxRanks; k *= 2) {
    Inputs more_nodes = e.inputs;
    more_nodes.nodes = e.inputs.nodes * k;
    if (any_fits(estimate(more_nodes), hw, &which)) {
      r.shortfall += "; " + which + " would fit on " + std::to_string(more_nodes.nodes) + " nodes of " +
                     std::to_string(e.inputs.gpus_per_node) + " (zinf estimate --nodes " +
                     std::to_string(more_nodes.nodes) + "; zinf launch --nnodes " +
                     std::to_string(more_nodes.nodes) + " runs them)";
      break;
    }
  }
  if (e.inputs.micro_batch > 1 || !e.inputs.activation_checkpointing) {
    Inputs leaner = e.inputs;
    leaner.micro_batch = 1;
    leaner.activation_checkpointing = true;
    if (any_fits(estimate(leaner), hw, &which))
      r.shortfall += "; " + which + " would fit with --batch-size 1 --activation-checkpointing";
  }
  return r;
}

Choice choose(const Inputs& in, const Hardware& hw) {
  const Estimate e = estimate(in);
  const Recommendation r = recommend(e, hw);
  if (r.nothing_fits)
    throw Error(r.explanation + ": " + r.shortfall,
                "add memory or machines, lower the micro-batch, or turn on activation checkpointing",
                ExitCode::kUnusable);
  if (!r.chosen)
    throw Error(r.explanation, "give the missing size (zinf estimate --help lists the flags), or pick a stage yourself",
                ExitCode::kUnusable);
  const Row& row = e.rows[*r.chosen];
  return {row.option, row.need, r.explanation};
}

}  // namespace zinf::plan
