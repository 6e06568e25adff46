// zinf::config — the schema of the run configuration.
// Implements: the table of every key zinf understands (DeepSpeed's keys plus
// zinf's own under "zinf"): its type, allowed values, whether "auto" is
// allowed, its built-in default and a line of help. Validation, defaults,
// unknown-key suggestions and `zinf config --explain` all read this one table.
// It follows DeepSpeed's own configuration models (deepspeed/runtime/zero/config.py,
// offload_config.py, precision_config.py, monitor/config.py, lr_schedules.py, ...):
// every key they accept is here, and keys zinf accepts without acting on them say why.
#pragma once

#include <string>
#include <vector>

#include "config/json.h"

namespace zinf::config {

enum class Kind {
  kBool,
  kInt,         // whole number; "1e8" and 1e8 accepted when integral
  kNumber,      // any finite number
  kString,
  kEnum,        // one of `allowed`
  kNumberList,  // array of numbers (betas)
  kOpaque,      // a DeepSpeed section zinf accepts and ignores (tensorboard, ...)
};

struct KeySpec {
  std::string path;                  // "zero_optimization.offload_param.device"
  Kind kind;
  Json default_value;                // null: no default, key absent unless given
  bool auto_ok = false;              // may be "auto" in input; never in the resolved file...
  bool auto_at_start = false;        // ...unless the trainer decides it when the engine starts
  bool nullable = false;             // null is a valid value
  double min = -1e300, max = 1e300;  // for kInt / kNumber
  std::vector<std::string> allowed;  // for kEnum
  std::string help;
  // Accepted for DeepSpeed compatibility but without effect in zinf: why.
  // A value other than the default and the `harmless` ones, set by a file,
  // the environment or a flag, warns once with this reason.
  std::string inert;
  std::vector<Json> harmless;        // values that do what zinf does anyway
};

const std::vector<KeySpec>& schema();

// The spec for `path`, or nullptr when the key is unknown.
const KeySpec* find_key(const std::string& path);

// True when `path` names an object of the schema (a prefix of known keys).
bool is_section(const std::string& path);

// The known keys directly under `section` ("" for top level), for suggestions.
std::vector<std::string> children_of(const std::string& section);

// The scheduler types DeepSpeed has (all honoured), and the types a
// scheduler.params key belongs to.
const std::vector<std::string>& scheduler_types();
std::vector<std::string> scheduler_types_of(const std::string& param);

// Why the key at `path` (or the section it is in) has no effect in zinf;
// empty when zinf acts on it.
std::string inert_reason(const std::string& path);

// The built-in defaults as one JSON document (the lowest merge layer).
Json defaults();

}  // namespace zinf::config
