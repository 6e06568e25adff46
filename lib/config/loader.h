// zinf::config — reading configuration files.
// Implements: loading a DeepSpeed JSON or a YAML file into Json. Syntax errors
// name the file, line and column. YAML scalars get JSON types (plain 1e8 is a
// number, quoted "1e8" a string) so a YAML file means what its JSON twin means.
// Text nested deeper than kMaxConfigDepth is refused before anything
// recursive reads it, naming the file and the place; so are files that are
// not regular files or are larger than kMaxConfigBytes.
#pragma once

#include <string>

#include "config/json.h"

namespace zinf::config {

// The most levels of objects and arrays a configuration may nest (the top
// level is 1); DeepSpeed's deepest keys are 4 levels down.
constexpr int kMaxConfigDepth = 64;
// The largest configuration file read (DeepSpeed's are a few KiB).
constexpr long long kMaxConfigBytes = 16LL << 20;

// JSON when the file starts with '{' (after blanks) or ends in .json; else YAML.
Json load_config_file(const std::string& path);

// Parses text; `name` is used in error messages. Both throw UsageError for
// text nested deeper than kMaxConfigDepth.
Json parse_json_text(const std::string& text, const std::string& name);
Json parse_yaml_text(const std::string& text, const std::string& name);

// Writes Json as YAML (for `zinf config --format yaml`).
std::string to_yaml(const Json& value);

}  // namespace zinf::config
