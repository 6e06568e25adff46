// zinf::config — where each configuration value came from.
// Implements: Origins, a map from dotted key path to the layer that set it
// ("default", "preset zero3", "file ds.json", "env ZINF_AIO_QUEUE_DEPTH",
// "flag --aio-queue-depth", "auto"). Errors quote it so a user knows which of
// their inputs to fix, and `zinf config --explain` prints it.
#pragma once

#include <map>
#include <string>

#include "config/json.h"

namespace zinf::config {

class Origins {
 public:
  void set(const std::string& path, const std::string& origin) { by_path_[path] = origin; }
  // Records `origin` for every leaf of `patch`, under `prefix`.
  void set_leaves(const Json& patch, const std::string& origin, const std::string& prefix = "");
  // The origin of `path`, or of its nearest recorded ancestor, or (for a
  // section only its keys were recorded under) of its first recorded key;
  // "default" when none.
  std::string of(const std::string& path) const;
  const std::map<std::string, std::string>& all() const { return by_path_; }

 private:
  std::map<std::string, std::string> by_path_;
};

// Deep-merges `patch` into `base`: objects merge key by key, everything else
// (arrays and null included) replaces.
void merge_into(Json& base, const Json& patch);

}  // namespace zinf::config
