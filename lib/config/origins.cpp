// zinf::config — origins of values and the deep merge.
#include "config/origins.h"

namespace zinf::config {

void Origins::set_leaves(const Json& patch, const std::string& origin, const std::string& prefix) {
  if (patch.is_object() && !patch.empty()) {
    for (auto it = patch.begin(); it != patch.end(); ++it)
      set_leaves(it.value(), origin, prefix.empty() ? it.key() : prefix + "." + it.key());
    return;
  }
  if (!prefix.empty()) by_path_[prefix] = origin;
}

std::string Origins::of(const std::string& path) const {
  std::string p = path;
  while (true) {
    auto it = by_path_.find(p);
    if (it != by_path_.end()) return it->second;
    const auto dot = p.rfind('.');
    if (dot == std::string::npos) return "default";
    p = p.substr(0, dot);
  }
}

void merge_into(Json& base, const Json& patch) {
  if (!patch.is_object() || !base.is_object()) {
    base = patch;
    return;
  }
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (it.value().is_object() && base.contains(it.key()) && base[it.key()].is_object())
      merge_into(base[it.key()], it.value());
    else
      base[it.key()] = it.value();
  }
}

}  // namespace zinf::config
