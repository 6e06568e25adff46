// zinf train — train a model (stage none so far).
// Implements: the `train` subcommand: resolve the configuration (same flags,
// presets and merge order as `zinf config`), refuse what the engine does not
// do yet, save OUTPUT_DIR/config.json, run the trainer with SIGINT/SIGTERM
// stopping after the current step, and print the run summary as one JSON line
// on stdout. Exit code 130 when stopped by a signal (after a checkpoint).
#include <iostream>
#include <memory>

#include "command.h"
#include "config/settings.h"
#include "core/error.h"
#include "core/fs.h"
#include "log/log.h"
#include "train/stop_signal.h"
#include "train/trainer.h"

namespace zinf::app {
namespace {

struct TrainCommand {
  ConfigOptions options;
};

void run_train(const TrainCommand& c) {
  const config::Resolved r = config::build_config(c.options.sources(), detect_machine_facts());
  for (const auto& w : r.warnings) log::warn(w);
  const config::Settings settings = config::settings_from(r.config);
  train::check_supported(settings);
  fs::make_dirs(settings.output_dir);
  fs::write_file_atomic(settings.output_dir + "/config.json", r.config.dump(2) + "\n");

  train::Trainer trainer(settings);
  const train::TrainResult result = trainer.run(&train::install_stop_signals());
  std::cout << result.summary.dump() << std::endl;
  log::info("outputs in " + settings.output_dir + ": config.json, metrics.jsonl, summary.json, checkpoints/, model.safetensors");
  if (result.interrupted) set_exit_code(static_cast<int>(ExitCode::kInterrupted));
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
