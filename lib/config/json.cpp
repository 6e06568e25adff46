// zinf::config — dotted-path access to JSON.
#include "config/json.h"

#include "core/text.h"

namespace zinf::config {

std::vector<std::string> split_path(const std::string& path) { return text::split(path, '.'); }

const Json* find_path(const Json& root, const std::string& path) {
  const Json* node = &root;
  for (const auto& part : split_path(path)) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(part);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

void set_path(Json& root, const std::string& path, Json value) {
  Json* node = &root;
  for (const auto& part : split_path(path)) {
    if (!node->is_object()) *node = Json::object();
    node = &(*node)[part];
  }
  *node = std::move(value);
}

}  // namespace zinf::config
