// zinf train — train a model.
// Implements: the `train` subcommand: read the rank environment (torchrun,
// Slurm or `zinf launch`); resolve the configuration (same flags, presets and
// merge order as `zinf config`); with --optimize, let the planner pick the
// ZeRO stage and offload; print the planner's estimate; refuse what the engine
// does not do yet; as one of several ranks, join the group (the rendezvous
// from MASTER_ADDR:MASTER_PORT) and check every rank resolved the same
// configuration; save OUTPUT_DIR/config.json (rank 0); run the trainer with
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
// written into the resolved configuration so config.json shows what ran.
void apply_optimize(config::Resolved& r, config::Settings& s, const Topology& t) {
  // The configured path, even when the asked stage keeps nothing on NVMe
  // (Settings only carries a path for a device that is nvme).
  std::string nvme_path;
  for (const char* key : {"zero_optimization.offload_optimizer.nvme_path", "zero_optimization.offload_param.nvme_path"})
    if (const config::Json* v = config::find_path(r.config, key); v && v->is_string() && nvme_path.empty())
      nvme_path = v->get<std::string>();
  const plan::Choice choice =
      plan::choose(plan::inputs_from(s, t.gpus_per_node, t.nodes, target_of(s)), plan::detect_hardware(nvme_path));
  config::Json& cfg = r.config;
  config::set_path(cfg, "zero_optimization.stage", choice.option.zero_stage);
  config::set_path(cfg, "zero_optimization.offload_param.device", config::device_name(choice.option.offload_param));
  config::set_path(cfg, "zero_optimization.offload_optimizer.device", config::device_name(choice.option.offload_optimizer));
  for (const char* key : {"zero_optimization.stage", "zero_optimization.offload_param.device",
                          "zero_optimization.offload_optimizer.device"})
    r.origins.set(key, "--optimize");
  s = config::settings_from(cfg);
  log::info("--optimize chose " + choice.option.name + ": " + choice.explanation);
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
  for (const auto& w : r.warnings) log::warn(w);
  config::Settings settings = config::settings_from(r.config);
  const Topology topology = topology_of(env);
  if (settings.optimize) apply_optimize(r, settings, topology);
  train::check_supported(settings);
  const plan::Target target = target_of(settings);
  plan::Inputs plan_in = plan::inputs_from(settings, topology.gpus_per_node, topology.nodes, target);
  if (target == plan::Target::kCuda) plan_in.gpu_capacity_bytes = plan::detect_hardware("").gpu_bytes;
  const plan::Need need = plan::estimate_option(plan_in, plan::option_from(settings));
  const plan::Option option = plan::option_from(settings);
  log::info("estimate for " + option.name + " (details: zinf estimate): " +
            (target == plan::Target::kCuda ? "GPU " + format_bytes(double(need.gpu_bytes)) + ", " : std::string()) +
            "CPU " + format_bytes(double(need.cpu_bytes)) +
            (need.nvme_bytes > 0 ? ", NVMe " + format_bytes(double(need.nvme_bytes)) : std::string()));
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
  if (leader) {
    // Device gradient sums on "auto" as the estimate counts them (after the
    // ranks compared configurations: GPUs may differ); the engine, when it
    // starts, records its own rank-agreed choice over this one.
    if (!settings.device_grad_accumulation)
      config::set_path(r.config, "zinf.offload.device_grad_accumulation", need.device_sums);
    fs::make_dirs(settings.output_dir);
    fs::write_file_atomic(settings.output_dir + "/config.json", r.config.dump(2) + "\n");
  }

  train::Trainer trainer(settings, comm.get(), env.local_rank);
  const train::TrainResult result = trainer.run(&train::install_stop_signals());
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
  log::info("outputs in " + settings.output_dir + ": config.json, metrics.jsonl, summary.json" +
            (settings.save ? ", checkpoints/, model.safetensors" : " (--no-save: no checkpoints, no model file)"));
}

void setup(CLI::App& app) {
  auto state = std::make_shared<TrainCommand>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train a GPT-style model. With no options: the tiny model on the bundled corpus.\n"
      "Writes OUTPUT_DIR/config.json (the resolved configuration), metrics.jsonl (one line per step),\n"
      "checkpoints/ (global_stepN + latest), model.safetensors and summary.json.\n"
      "SIGINT/SIGTERM stop after the current step with a checkpoint; --resume continues from it.");
  state->options.add_to(*cmd, config::kSourceOptions | config::kZeroOptions | config::kModelOptions |
                                  config::kTrainOptions);
  cmd->callback([state] { run_train(*state); });
}

ZINF_REGISTER_COMMAND(10, setup);

}  // namespace
}  // namespace zinf::app
