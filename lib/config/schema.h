// zinf::config — the schema of the run configuration.
// Implements: the table of every key zinf understands (DeepSpeed's keys plus
// zinf's own under "zinf"): its type, allowed values, whether "auto" is
// allowed, its built-in default and a line of help. Validation, defaults,
// unknown-key suggestions and `zinf config --explain` all read this one table.
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
};

const std::vector<KeySpec>& schema();

// The spec for `path`, or nullptr when the key is unknown.
const KeySpec* find_key(const std::string& path);

// True when `path` names an object of the schema (a prefix of known keys).
bool is_section(const std::string& path);

// The known keys directly under `section` ("" for top level), for suggestions.
std::vector<std::string> children_of(const std::string& section);

// The built-in defaults as one JSON document (the lowest merge layer).
Json defaults();

}  // namespace zinf::config
