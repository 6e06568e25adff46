// zinf::config — origins of values (leaves recorded; a section answers with its keys' origin) and the deep merge.
#include "config/origins.h"

namespace zinf::config {

namespace {

std::string join(const std::string& prefix, const std::string& key) { return prefix.empty() ? key : prefix + "." + key; }

}  // namespace

void Origins::set_leaves(const Json& patch, const std::string& origin, const std::string& prefix) {
  if (!patch.is_object() || patch.empty()) {
    if (!prefix.empty()) by_path_[prefix] = origin;
    return;
  }
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string path = join(prefix, it.key());
    if (it.value().is_object() && !it.value().empty())
      set_leaves(it.value(), origin, path);
    else
      by_path_[path] = origin;  // a top-level "" key too, so errors about it name its origin
  }
}

std::string Origins::of(const std::string& path) const {
  for (std::string p = path;;) {
    auto it = by_path_.find(p);
    if (it != by_path_.end()) return it->second;
    const auto dot = p.rfind('.');
    if (dot == std::string::npos) break;
    p = p.substr(0, dot);
  }
  // A section nobody set as a whole (a misspelt one among them) came from
  // where its keys came from.
  const std::string below = path + ".";
  auto it = by_path_.lower_bound(below);
  if (it != by_path_.end() && it->first.compare(0, below.size(), below) == 0) return it->second;
  return "default";
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
