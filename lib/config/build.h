// zinf::config — building the resolved configuration.
// Implements: the one merge order (built-in defaults < presets and the
// --zero-stage recipe < --config file < ZINF_* environment < flags), "auto"
// resolution from the model, batch and machine, and validation whose errors
// name the key path, the bad value, where it came from and what is allowed.
// The result is a DeepSpeed-compatible JSON with zinf's own keys under "zinf"
// and no "auto" left in it. DeepSpeed's leniencies are kept with a warning
// each (unknown top-level keys, aio inside zero_optimization), and keys zinf
// accepts without acting on warn once when set to a value that matters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/json.h"
#include "config/origins.h"

namespace zinf::config {

struct OptionValue {
  std::string name;   // option name without dashes, "aio-block-size"
  std::string value;  // raw text as given
};

struct Sources {
  std::vector<OptionValue> env;    // from ZINF_* variables (see read_env_options)
  std::vector<OptionValue> flags;  // from the command line
  std::string presets_dir;         // empty: presets_dir()
};

// What "auto" values may depend on besides the configuration itself.
struct MachineFacts {
  int world_size = 1;              // data-parallel ranks
  int cuda_devices = 0;            // visible GPUs
  bool bf16_supported = false;     // on the GPU that will run
  std::int64_t cpu_memory_bytes = 0;
};

struct Resolved {
  Json config;                     // DeepSpeed JSON + "zinf", no "auto"
  Origins origins;                 // where each value came from
  std::vector<std::string> warnings;
};

Resolved build_config(const Sources& sources, const MachineFacts& machine);

// The options set through ZINF_* variables in `environ`, for the given groups.
std::vector<OptionValue> read_env_options(unsigned groups);

// Where presets live: $ZINF_PRESETS_DIR, else the source tree's presets/.
std::string presets_dir();
// The names of the presets in `dir` (file names without .yaml).
std::vector<std::string> preset_names(const std::string& dir);

// Where the bundled corpus lives: $ZINF_DATA_DIR, else the source tree's data/.
std::string data_dir();

// Checks a configuration (user input, before resolution) against the schema:
// unknown keys with suggestions, types, ranges, allowed values.
void check_against_schema(const Json& cfg, const Origins& origins, bool allow_auto);

// "zero3", "infinity (nvme)", ... for messages.
std::string describe_zero(const Json& cfg);

// The training recipe of a resolved configuration in one line, for the
// first lines of the log: "recipe: AdamW lr 3e-4 (auto), warmup 5 steps then
// cosine to 3e-5 at step 100, weight decay 0.01 on block matrices (not norms,
// biases, embeddings), clip 1.0".
std::string describe_recipe(const Json& cfg, const Origins& origins);

}  // namespace zinf::config
