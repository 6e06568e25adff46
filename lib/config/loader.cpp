// zinf::config — JSON and YAML files to Json, with line/column errors.
#include "config/loader.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"

namespace zinf::config {
namespace {

// Line and column (1-based) of byte offset `pos` in `text`.
std::pair<int, int> line_column(const std::string& text, std::size_t pos) {
  int line = 1, col = 1;
  for (std::size_t i = 0; i < pos && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return {line, col};
}

Json scalar_to_json(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() == "!") return s;  // quoted: always a string
  if (s == "~" || s == "null" || s == "Null" || s == "NULL" || s.empty()) return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  char* end = nullptr;
  const long long i = std::strtoll(s.c_str(), &end, 10);
  if (end && *end == '\0' && !s.empty()) return i;
  const double d = std::strtod(s.c_str(), &end);
  if (end && *end == '\0' && std::isfinite(d) && !s.empty()) return d;
  return s;
}

Json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      Json arr = Json::array();
      for (const auto& item : node) arr.push_back(yaml_to_json(item));
      return arr;
    }
    case YAML::NodeType::Map: {
      Json obj = Json::object();
      for (const auto& kv : node) obj[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return obj;
    }
  }
  return nullptr;
}

void emit_yaml(YAML::Emitter& out, const Json& v) {
  if (v.is_object()) {
    out << YAML::BeginMap;
    for (auto it = v.begin(); it != v.end(); ++it) {
      out << YAML::Key << it.key() << YAML::Value;
      emit_yaml(out, it.value());
    }
    out << YAML::EndMap;
  } else if (v.is_array()) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& item : v) emit_yaml(out, item);
    out << YAML::EndSeq;
  } else if (v.is_null()) {
    out << YAML::Null;
  } else if (v.is_boolean()) {
    out << v.get<bool>();
  } else if (v.is_string()) {
    const std::string s = v.get<std::string>();
    // Quote strings that YAML would otherwise read back as numbers or booleans.
    const Json reread = scalar_to_json(YAML::Load(s.empty() ? "''" : s));
    if (!reread.is_string() || s != reread.get<std::string>())
      out << YAML::DoubleQuoted << s;
    else
      out << s;
  } else {
    out << v.dump();
  }
}

}  // namespace

Json parse_json_text(const std::string& text, const std::string& name) {
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    const auto [line, col] = line_column(text, e.byte == 0 ? 0 : e.byte - 1);
    std::string what = e.what();
    // nlohmann's text: "[json.exception.parse_error.101] parse error at line 3, column 5: ..."
    const auto colon = what.find(": ");
    const std::string detail = colon == std::string::npos ? what : what.substr(colon + 2);
    throw UsageError(name + ":" + std::to_string(line) + ":" + std::to_string(col) +
                         ": malformed JSON: " + detail,
                     "fix the file at line " + std::to_string(line) + ", column " + std::to_string(col));
  }
}

Json parse_yaml_text(const std::string& text, const std::string& name) {
  try {
    const YAML::Node root = YAML::Load(text);
    if (root.IsNull()) return Json::object();
    return yaml_to_json(root);
  } catch (const YAML::Exception& e) {
    const int line = e.mark.line + 1, col = e.mark.column + 1;
    throw UsageError(name + ":" + std::to_string(line) + ":" + std::to_string(col) +
                         ": malformed YAML: " + e.msg,
                     "fix the file at line " + std::to_string(line) + ", column " + std::to_string(col));
  }
}

Json load_config_file(const std::string& path) {
  if (!fs::exists(path))
    throw UsageError("config file '" + path + "' does not exist", "check the path given to --config");
  if (fs::is_directory(path))
    throw UsageError("config file '" + path + "' is a directory", "give --config a JSON or YAML file");
  const std::string text = fs::read_file(path);
  const std::string head = text::trim(text);
  Json value = (text::ends_with(path, ".json") || (!head.empty() && head[0] == '{'))
                   ? parse_json_text(text, path)
                   : parse_yaml_text(text, path);
  if (!value.is_object())
    throw UsageError(path + ": the top level must be an object (key: value pairs)",
                     "see configs/*.json for examples");
  return value;
}

std::string to_yaml(const Json& value) {
  YAML::Emitter out;
  emit_yaml(out, value);
  return std::string(out.c_str()) + "\n";
}

}  // namespace zinf::config
