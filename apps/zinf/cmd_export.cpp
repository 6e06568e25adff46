// zinf export — checkpoint to a Hugging Face model directory.
// Implements: `zinf export CHECKPOINT_DIR OUT_DIR [--dtype bf16|fp16|fp32]
// [--max-shard-size 5GB]`: the weights of a checkpoint (a global_stepN
// directory, a checkpoints/ directory with `latest`, or a training output
// directory), gathered from the shards of however many ranks wrote it, as a
// directory transformers' from_pretrained loads: config.json,
// generation_config.json, model.safetensors or model-0000k-of-0000n shards
// with model.safetensors.index.json (train::export_checkpoint). The default
// dtype is the checkpoint's training precision. The weights are verified
// against the checkpoint's checksums as they are read; OUT_DIR is written
// under a temporary name and renamed when complete; an existing non-empty
// OUT_DIR is refused.
#include <iostream>
#include <memory>

#include "command.h"
#include "core/error.h"
#include "core/units.h"
#include "log/log.h"
#include "train/checkpoint.h"

namespace zinf::app {
namespace {

struct ExportCommand {
  std::string checkpoint;
  std::string output;
  std::string dtype;                  // empty: the checkpoint's precision
  std::string max_shard_size = "5GB";
};

std::int64_t shard_bytes(const std::string& text) {
  const auto bytes = parse_bytes(text);
  if (!bytes || *bytes <= 0)
    throw UsageError("--max-shard-size '" + text + "' is not a size",
                     "a positive size such as 5GB, 500MB, 2GiB or a number of bytes");
  return *bytes;
}

void setup(CLI::App& app) {
  auto state = std::make_shared<ExportCommand>();
  CLI::App* cmd = app.add_subcommand(
      "export",
      "Write a checkpoint as a Hugging Face model directory (config.json, generation_config.json,\n"
      "safetensors shards and model.safetensors.index.json) that transformers' from_pretrained loads,\n"
      "gathering the shards of every rank that wrote it.\n"
      "CHECKPOINT_DIR may be a checkpoint (global_stepN), a checkpoints/ directory (its `latest` is\n"
      "used) or a training output directory. OUT_DIR must not exist or be empty.");
  cmd->add_option("CHECKPOINT_DIR", state->checkpoint, "checkpoint, checkpoints/ or output directory")->required();
  cmd->add_option("OUT_DIR", state->output, "the model directory to write")->required();
  cmd->add_option("--dtype", state->dtype,
                  "bf16 | fp16 | fp32: the weights' dtype (default: the checkpoint's training precision)");
  cmd->add_option("--max-shard-size", state->max_shard_size,
                  "largest safetensors file, e.g. 5GB (default), 500MB, 2GiB, bytes; a larger tensor gets a file "
                  "of its own");
  cmd->callback([state] {
    train::ExportOptions options;
    options.dtype = state->dtype;
    if (!options.dtype.empty()) train::export_dtype(options.dtype);
    options.max_shard_bytes = shard_bytes(state->max_shard_size);
    const std::string used = train::export_checkpoint(state->checkpoint, state->output, options);
    log::info("exported " + used + " to " + state->output);
  });
}

ZINF_REGISTER_COMMAND(50, setup);

}  // namespace
}  // namespace zinf::app
