// zinf::config — JSON type and dotted-path access.
// Implements: the Json alias used across the config module and the helpers
// that read and write a value at a dotted path ("zero_optimization.stage").
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace zinf::config {

using Json = nlohmann::ordered_json;

// "a.b.c" -> {"a","b","c"}.
std::vector<std::string> split_path(const std::string& path);

// The value at `path`, or nullptr when any component is missing.
const Json* find_path(const Json& root, const std::string& path);

// Sets `value` at `path`, creating objects on the way.
void set_path(Json& root, const std::string& path, Json value);

// True when the value is the string "auto".
inline bool is_auto(const Json& v) { return v.is_string() && v.get<std::string>() == "auto"; }

}  // namespace zinf::config
