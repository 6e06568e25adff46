// zinf::config — command-line options and their environment twins.
// Implements: the table of every option `zinf train|estimate|config` accept,
// with its help text, its ZINF_* environment name, and how a value given for
// it changes the configuration. apps/ registers these with CLI11; the builder
// (config/build.h) applies them in merge order. Names are part of the
// interface: they match the issue tracker's and DeepSpeed users' vocabulary.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "config/json.h"

namespace zinf::config {

class Origins;

enum class OptionType {
  kString,    // free text or one of `allowed`
  kInt,       // whole number ("1e8" accepted)
  kBytes,     // byte count ("1048576", "1MiB", "1e6")
  kNumber,    // real number
  kBoolPair,  // --name / --no-name
  kSwitch,    // --name only (true when given)
};

// What a subcommand accepts, as a bit mask.
enum OptionGroup : unsigned {
  kSourceOptions = 1,   // --preset, --zero-stage, --config
  kZeroOptions = 2,     // stage / offload / aio
  kModelOptions = 4,    // model shape
  kTrainOptions = 8,    // data, loop, outputs
};

struct OptionSpec {
  std::string name;        // "aio-block-size" (the flag is --aio-block-size)
  OptionType type;
  std::string value_name;  // "BYTES"; empty for kBoolPair / kSwitch
  std::string help;
  unsigned group;
  std::vector<std::string> allowed;  // for kString choices
  // Writes the (already type-checked) value into the configuration; records
  // what it changed in `origins` under `origin` ("flag --aio-block-size").
  std::function<void(Json& cfg, const std::string& value, const std::string& origin, Origins& origins)>
      apply;
};

const std::vector<OptionSpec>& options();
const OptionSpec* find_option(const std::string& name);

// "ZINF_AIO_BLOCK_SIZE" for "aio-block-size".
std::string env_name(const std::string& option_name);

// Checks and normalises a raw value for `spec` ("1MiB" -> "1048576", "yes" -> "true").
// Throws UsageError naming `origin` and what is allowed.
std::string normalise_option_value(const OptionSpec& spec, const std::string& raw, const std::string& origin);

}  // namespace zinf::config
