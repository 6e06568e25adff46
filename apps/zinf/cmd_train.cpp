// zinf train — train a model.
// Implements: the `train` subcommand: read the rank environment (torchrun,
// Slurm or `zinf launch`); resolve the configuration (same flags, presets and
// merge order as `zinf config`); with --optimize, let the planner pick the
// ZeRO stage and offload; print the planner's estimate; refuse what the engine
// does not do yet; as one of several ranks, join the group (the rendezvous
// from MASTER_ADDR:MASTER_PORT) and check every rank resolved the same
// configuration; save OUTPUT_DIR/ds_config.json (rank 0); run the trainer with
// SIGINT/SIGTERM stopping after the current step; print the measured peaks
// next to the estimate and the run summary as one JSON line on stdout (rank
// 0). Ranks other than 0 log only warnings and errors. Exit code 130 when
// stopped by a signal (after a checkpoint).
#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>

#include "command.h"
#include "comm/communicator.h"
#include "config/settings.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/units.h"
#include "launch/rank_env.h"
#include "log/log.h"
#include "plan/estimate.h"
#include "plan/recommend.h"
#include "train/distributed.h"
#include "train/stop_signal.h"
#include "train/trainer.h"

namespace zinf::app {
namespace {

struct TrainCommand {
  ConfigOptions options;
};

plan::Target target_of(const config::Settings& s) {
  return s.device == "cuda" ? plan::Target::kCuda : plan::Target::kCpu;
}

// Ranks per node and nodes, as the planner counts them.
struct Topology {
  int gpus_per_node = 1, nodes = 1;
};

Topology topology_of(const launch::RankEnv& env) {
  const int per_node = std::max(1, env.local_world_size);
  return {per_node, std::max(1, env.world_size / per_node)};
}

// --optimize: the fastest stage/offload that fits this machine (lib/plan),
// written into the resolved configuration so ds_config.json shows what ran.
void apply_optimize(config::Resolved& r, config::Settings& s, const Topology& t) {
  const plan::Choice choice = plan::choose(plan::inputs_from(s, t.gpus_per_node, t.nodes, target_of(s)),
                                           plan::detect_hardware(s.swap_root()));
  config::Json& cfg = r.config;
  config::set_path(cfg, "zero_optimization.stage", choice.option.zero_stage);
  config::set_path(cfg, "zero_optimization.offload_param.device", tier_name(choice.option.offload_param));
  config::set_path(cfg, "zero_optimization.offload_optimizer.device", tier_name(choice.option.offload_optimizer));
  for (const char* key : {"zero_optimization.stage", "zero_optimization.offload_param.device",
                          "zero_optimization.offload_optimizer.device"})
    r.origins.set(key, "--optimize");
  s = config::settings_from(cfg);
  log::info("--optimize chose " + choice.option.name + ": " + choice.explanation);
}

// "zinf estimate says infinity-cpu fits (GPU 12.0 GiB, CPU 40.1 GiB): run with
// --optimize, or --zero-stage ..."; or what nothing fitting means.
std::string what_fits(const plan::Inputs& in, const plan::Hardware& hw, const plan::Option& current) {
  try {
    const plan::Choice c = plan::choose(in, hw);
    if (c.option.name == current.name)
      return "zinf estimate judges " + current.name + " to fit with its " + plan::safety_margin_text() +
             " margin; lower --batch-size or --seq-len, or turn on --activation-checkpointing";
    return "zinf estimate says " + c.option.name + " fits (" + c.explanation + "): run with --optimize to use it";
  } catch (const Error& e) {
    return std::string("zinf estimate recommends nothing here: ") + e.what();
  }
}

// Refuses (exit 3), before anything is allocated, a run whose estimate
// exceeds what this machine has: the GPU's memory, or host memory available now.
void check_memory_fits(const plan::Need& need, const plan::Inputs& in, const plan::Option& option,
                       const plan::Hardware& hw, plan::Target target) {
  std::string over;
  if (target == plan::Target::kCuda && hw.gpu_bytes && need.gpu_bytes > *hw.gpu_bytes)
    over = "GPU " + format_bytes(double(need.gpu_bytes)) + " per GPU, but the GPU has " +
           format_bytes(double(*hw.gpu_bytes));
  if (hw.cpu_bytes && need.cpu_bytes > *hw.cpu_bytes)
    over += (over.empty() ? "" : "; ") + std::string("CPU ") + format_bytes(double(need.cpu_bytes)) +
            ", but this machine has " + format_bytes(double(*hw.cpu_bytes)) + " of memory available";
  if (over.empty()) return;
  throw Error(option.name + " cannot fit this machine: the estimate needs " + over +
                  " (details: zinf estimate with the same options)",
              what_fits(in, hw, option), ExitCode::kUnusable);
}

// An allocation that failed during the run, with the planner's view of it.
[[noreturn]] void explain_out_of_memory(const train::OutOfMemory& e, const plan::Need& need, const plan::Inputs& in,
                                        const plan::Option& option, const plan::Hardware& hw, plan::Target target) {
  const bool gpu = e.tier() == "GPU" && target == plan::Target::kCuda;
  const std::vector<plan::Item>& items = gpu ? need.gpu : need.cpu;
  std::int64_t in_phase = 0;
  // The end of backward is part of the trainer's forward/backward phase.
  const bool backward = e.phase() == plan::phase_name(plan::Phase::kStep);
  for (const plan::Item& i : items)
    if (e.phase() == plan::phase_name(i.phase) || (backward && i.phase == plan::Phase::kBackwardEnd)) in_phase += i.bytes;
  std::string planned = "the planner estimated " + std::string(gpu ? "GPU " : "CPU ") +
                        format_bytes(double(gpu ? need.gpu_bytes : need.cpu_bytes)) + " for " + option.name;
  if (in_phase > 0) planned += ", of which " + format_bytes(double(in_phase)) + " in the " + e.phase();
  const std::optional<std::int64_t> capacity = gpu ? hw.gpu_bytes : hw.cpu_bytes;
  if (capacity) planned += std::string(gpu ? "; the GPU has " : "; available at start: ") + format_bytes(double(*capacity));
  throw Error(std::string(e.what()) + "; " + planned,
              what_fits(in, hw, option) +
                  (e.step() > 0 ? ". Checkpoints already saved are intact: add --resume to continue from the last one"
                                : std::string()),
              ExitCode::kUnusable);
}

void run_train(const TrainCommand& c) {
  // Validated first: RANK outside [0, WORLD_SIZE), a missing MASTER_ADDR, ...
  const launch::RankEnv env = launch::current_rank_env();
  const bool leader = env.rank == 0;
  // One rank speaks for the run; the others report only what goes wrong
  // (--log-level debug still shows every rank).
  if (!leader && log::level() == log::Level::kInfo) log::set_level(log::Level::kWarn);
  config::MachineFacts facts = detect_machine_facts();
  facts.world_size = env.world_size;
  config::Resolved r = config::build_config(c.options.sources(), facts);
  for (const auto& w : r.warnings) log::warn_once(w, w);  // each once per process
  config::Settings settings = config::settings_from(r.config);
  if (leader) log::info(config::describe_recipe(r.config, r.origins));
  const Topology topology = topology_of(env);
  if (settings.optimize) apply_optimize(r, settings, topology);
  train::check_supported(settings);
  const plan::Target target = target_of(settings);
  const plan::Hardware hardware = plan::detect_hardware(settings.swap_root());
  plan::Inputs plan_in = plan::inputs_from(settings, topology.gpus_per_node, topology.nodes, target);
  if (target == plan::Target::kCuda) plan_in.gpu_capacity_bytes = hardware.gpu_bytes;
  const plan::Need need = plan::estimate_option(plan_in, plan::option_from(settings));
  const plan::Option option = plan::option_from(settings);
  log::info("estimate for " + option.name + " (details: zinf estimate): " +
            (target == plan::Target::kCuda ? "GPU " + format_bytes(double(need.gpu_bytes)) + ", " : std::string()) +
            "CPU " + format_bytes(double(need.cpu_bytes)) +
            (need.nvme_bytes > 0 ? ", NVMe " + format_bytes(double(need.nvme_bytes)) : std::string()));
  check_memory_fits(need, plan_in, option, hardware, target);
  std::unique_ptr<comm::Communicator> comm;
  if (env.distributed()) {
    comm::Rendezvous rdv;
    rdv.rank = env.rank;
    rdv.world_size = env.world_size;
    rdv.master_addr = env.master_addr;
    rdv.master_port = env.master_port;
    rdv.timeout = std::chrono::seconds(settings.comm_timeout_s);
    comm = train::join_group(settings, rdv, env.local_rank);
    train::check_same_config(*comm, r.config);
    log::info("rank 0 of " + std::to_string(env.world_size) + " (" + launch::describe(env.source) + "), " +
              comm::backend_name(comm->backend()) + " through " + env.master_addr + ":" +
              std::to_string(env.master_port) + "; every rank resolved the same configuration");
  }
  // One run per output directory, for the life of the run (rank 0 speaks for
  // the run; the other ranks write only their checkpoint shards under it).
  std::optional<DirLock> output_lock;
  if (leader) {
    fs::make_dirs(settings.output_dir);
    output_lock = DirLock::acquire(settings.output_dir, "output directory", "zinf train");
  }
  // Device gradient sums on "auto" as the estimate counts them (after the
  // ranks compared configurations: GPUs may differ); the engine, when it
  // starts, reports its own rank-agreed choice over this one.
  if (!settings.device_grad_accumulation)
    config::set_path(r.config, "zinf.offload.device_grad_accumulation", need.device_sums);
  // ds_config.json is written once, when the run has started: a run that fails
  // at start leaves none behind, and it shows what really runs.
  const auto started = [&](const train::StartFacts& facts) {
    if (!leader) return;
    if (facts.nvme_fallback) {
      config::Json& zo = r.config["zero_optimization"];
      for (const char* key : {"offload_param", "offload_optimizer"})
        if (zo.contains(key) && zo[key].is_object() && zo[key].value("device", "none") == "nvme") {
          zo[key]["device"] = "cpu";
          zo[key].erase("nvme_path");
        }
      config::set_path(r.config, "zinf.offload.nvme_fallback", *facts.nvme_fallback);
    }
    if (facts.device_grad_accumulation)
      config::set_path(r.config, "zinf.offload.device_grad_accumulation", *facts.device_grad_accumulation);
    fs::write_file_atomic(settings.output_dir + "/ds_config.json", r.config.dump(2) + "\n");
  };

  train::Trainer trainer(settings, comm.get(), env.local_rank);
  train::TrainResult result;
  try {
    result = trainer.run(&train::install_stop_signals(), started);
  } catch (const train::OutOfMemory& e) {
    explain_out_of_memory(e, need, plan_in, option, hardware, target);
  }
  if (result.interrupted) set_exit_code(static_cast<int>(ExitCode::kInterrupted));
  if (!leader) return;
  std::cout << result.summary.dump() << std::endl;
  // Every run checks the planner: measured peaks next to the estimate.
  const auto measured = [&](const char* key) {
    return result.summary.contains(key) ? result.summary[key].get<std::int64_t>() : std::int64_t{0};
  };
  std::string peaks = "measured peaks: CPU RSS " + format_bytes(double(measured("peak_rss_bytes"))) + " (estimated " +
                      format_bytes(double(need.cpu_bytes)) + ")";
  if (target == plan::Target::kCuda)
    peaks += ", GPU " + format_bytes(double(measured("peak_gpu_bytes"))) + " (estimated " +
             format_bytes(double(need.gpu_bytes)) + ")";
  if (need.nvme_bytes > 0 || measured("nvme_peak_bytes") > 0)
    peaks += ", NVMe swap files " + format_bytes(double(measured("nvme_peak_bytes"))) + " (estimated " +
             format_bytes(double(need.nvme_bytes)) + ")";
  log::info(peaks);
  log::info("outputs in " + settings.output_dir + ": ds_config.json, metrics.jsonl, summary.json" +
            (settings.save ? ", checkpoints/, model/ (Hugging Face model directory)" : " (--no-save: no checkpoints, no model file)"));
}

void setup(CLI::App& app) {
  auto state = std::make_shared<TrainCommand>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train a GPT-style model. With no options: the tiny model on the bundled corpus.\n"
      "Writes OUTPUT_DIR/ds_config.json (the resolved configuration), metrics.jsonl (one line per step),\n"
      "checkpoints/ (global_stepN + latest), model/ (a Hugging Face model directory in the run's precision)\n"
      "and summary.json.\n"
      "SIGINT/SIGTERM stop after the current step with a checkpoint; --resume continues from it.");
  state->options.add_to(*cmd, config::kSourceOptions | config::kZeroOptions | config::kModelOptions |
                                  config::kTrainOptions);
  cmd->callback([state] { run_train(*state); });
}

ZINF_REGISTER_COMMAND(10, setup);

}  // namespace
}  // namespace zinf::app
