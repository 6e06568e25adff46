// zinf export — checkpoint to safetensors.
// Implements: `zinf export CHECKPOINT_DIR OUT.safetensors`: the fp32 weights of
// a checkpoint (a global_stepN directory, a checkpoints/ directory with
// `latest`, or a training output directory), gathered from the shards of
// however many ranks wrote it and streamed into a safetensors file with
// nanoGPT's parameter names, what DeepSpeed's zero_to_fp32 does. The
// weights are verified against the checkpoint's checksums as they are read;
// OUT is written through a temporary name and renamed when complete, and an
// OUT that is one of the checkpoint's own files is refused
// (train::export_checkpoint).
#include <iostream>
#include <memory>

#include "command.h"
#include "log/log.h"
#include "train/checkpoint.h"

namespace zinf::app {
namespace {

struct ExportCommand {
  std::string checkpoint;
  std::string output;
};

void setup(CLI::App& app) {
  auto state = std::make_shared<ExportCommand>();
  CLI::App* cmd = app.add_subcommand(
      "export",
      "Write a checkpoint's fp32 weights as a safetensors file (like DeepSpeed's zero_to_fp32),\n"
      "gathering the shards of every rank that wrote it.\n"
      "CHECKPOINT_DIR may be a checkpoint (global_stepN), a checkpoints/ directory (its `latest` is\n"
      "used) or a training output directory. OUT may not be one of the checkpoint's files.");
  cmd->add_option("CHECKPOINT_DIR", state->checkpoint, "checkpoint, checkpoints/ or output directory")->required();
  cmd->add_option("OUT", state->output, "the .safetensors file to write")->required();
  cmd->callback([state] {
    const std::string used = train::export_checkpoint(state->checkpoint, state->output);
    log::info("exported " + used + " to " + state->output);
  });
}

ZINF_REGISTER_COMMAND(50, setup);

}  // namespace
}  // namespace zinf::app
