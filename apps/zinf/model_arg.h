// zinf app — the MODEL argument of `zinf eval` and `zinf generate`.
// Implements: open_model(): a Hugging Face model directory (config.json +
// safetensors: its config sets the model, as --from-pretrained does) or a
// zinf checkpoint (a global_stepN, checkpoints/ or output directory: the
// checkpoint's own model), resolved with the command's other options into
// Settings and the WeightSource its weights come from.
#pragma once

#include <memory>
#include <string>

#include "command.h"
#include "config/settings.h"
#include "train/weight_source.h"

namespace zinf::app {

struct OpenedModel {
  config::Settings settings;
  std::unique_ptr<train::WeightSource> weights;
};

// model: the positional argument (may be empty when --from-pretrained is
// given); reads_data: false for commands that read no dataset (generate).
OpenedModel open_model(const std::string& model, const ConfigOptions& options, bool reads_data = true);

}  // namespace zinf::app
