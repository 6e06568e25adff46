// zinf::config — JSON and YAML files to Json, with line/column errors and a bound on nesting.
#include "config/loader.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"
#include "core/units.h"

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

// ------------------------------------------------------------ nesting bounds
// Parsers, the merge, origins and validation all recurse over the nesting,
// so a file nested thousands of levels deep would overflow the stack (and
// one 10,000 deep made a 200 MB config.json). Files are refused before any
// of that: JSON by counting brackets outside strings, YAML by a scan of its
// block levels and flow brackets (an estimate within a factor of two, which
// bounds yaml-cpp's recursion), then exactly while converting to Json, which
// also bounds what YAML aliases can expand to.

constexpr std::size_t kMaxYamlValues = std::size_t(1) << 20;

// "a.b[].c" of the first keys of `path`, cut after 8.
std::string path_prefix(const std::vector<std::string>& path) {
  std::string out;
  for (std::size_t i = 0; i < path.size() && i < 8; ++i)
    out += path[i] == "[]" ? path[i] : (out.empty() ? "" : ".") + path[i];
  return out.empty() ? "the top level" : out + (path.size() > 8 ? "..." : "");
}

// `where` is "file:line[:col]" or the file; `at` the key path, or empty.
Error too_deep(const std::string& where, const std::string& at) {
  return UsageError(where + ": nested more than " + std::to_string(kMaxConfigDepth) + " levels deep" +
                        (at.empty() ? "" : " (at " + at + ")"),
                    "configurations need a few levels (DeepSpeed's deepest keys are 4 down); look for runaway "
                    "nesting there");
}

// Brackets outside strings are JSON's nesting, exactly; the keys on the way name the place.
void check_json_depth(const std::string& text, const std::string& name) {
  std::vector<std::string> keys;  // one per open bracket: the key being read in it, or "[]"
  std::string last;               // the last string: a key when a ':' follows
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      last.clear();
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\' && i + 1 < text.size()) ++i;
        last += text[i];
      }
    } else if (c == ':' && !keys.empty()) {
      keys.back() = last;
    } else if (c == '{' || c == '[') {
      keys.push_back(c == '[' ? "[]" : "");
      if (keys.size() > static_cast<std::size_t>(kMaxConfigDepth)) {
        keys.pop_back();
        const auto [line, col] = line_column(text, i);
        throw too_deep(name + ":" + std::to_string(line) + ":" + std::to_string(col), path_prefix(keys));
      }
    } else if ((c == '}' || c == ']') && !keys.empty()) {
      keys.pop_back();
    }
  }
}

// YAML's nesting per line: block levels by indentation (a "- " entry opens
// one more at its content's column) plus open flow brackets, skipping quoted
// text, comments and block scalars.
void check_yaml_depth(const std::string& text, const std::string& name) {
  constexpr std::size_t npos = std::string::npos;
  std::vector<std::size_t> levels;  // the column each open block level starts at
  int flow = 0;                     // open [ and {
  char quote = 0;                   // a quoted scalar continues on the next line
  std::size_t scalar_indent = npos; // after "key: |": lines indented more are text
  std::size_t begin = 0;
  for (int line_no = 1; begin < text.size(); ++line_no) {
    std::size_t end = text.find('\n', begin);
    if (end == npos) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    const std::size_t col = line.find_first_not_of(' ');
    if (col == npos || line[col] == '\r') continue;
    if (scalar_indent != npos && quote == 0) {
      if (col > scalar_indent) continue;
      scalar_indent = npos;
    }
    auto deeper = [&](std::size_t depth) {
      if (depth > static_cast<std::size_t>(kMaxConfigDepth))
        throw too_deep(name + ":" + std::to_string(line_no), "");
    };
    auto open_block = [&](std::size_t at) {
      while (!levels.empty() && levels.back() > at) levels.pop_back();
      if (levels.empty() || levels.back() < at) levels.push_back(at);
      deeper(levels.size() + static_cast<std::size_t>(flow));
    };
    std::size_t i = col;
    if (flow == 0 && quote == 0) {
      if (line[col] == '#' || line[0] == '%') continue;
      if (col == 0 && (line.rfind("---", 0) == 0 || line.rfind("...", 0) == 0)) {
        levels.clear();
        continue;
      }
      open_block(col);
      // "- - x" and "? x": each entry opens a level at its content's column
      while (i + 1 < line.size() && (line[i] == '-' || line[i] == '?') && line[i + 1] == ' ') {
        i = line.find_first_not_of(' ', i + 1);
        if (i == npos || line[i] == '#') break;
        open_block(i);
      }
      if (i == npos) continue;
    }
    bool at_value = true;  // a bracket or quote here opens a collection or a quoted scalar
    for (; i < line.size(); ++i) {
      const char c = line[i];
      if (quote != 0) {
        if (quote == '"' && c == '\\') ++i;
        else if (c == quote && quote == '\'' && i + 1 < line.size() && line[i + 1] == '\'') ++i;
        else if (c == quote) quote = 0;
        continue;
      }
      if (c == ' ' || c == '\t' || c == '\r') continue;
      if (c == '#' && i > 0 && (line[i - 1] == ' ' || line[i - 1] == '\t')) break;
      const bool indicator_follows_space = i + 1 == line.size() || line[i + 1] == ' ';
      if ((c == '"' || c == '\'') && at_value) {
        quote = c;
      } else if ((c == '[' || c == '{') && (at_value || flow > 0)) {
        ++flow;
        deeper(levels.size() + static_cast<std::size_t>(flow));
      } else if ((c == ']' || c == '}') && flow > 0) {
        --flow;
      }
      at_value = ((c == ':' || c == '-' || c == '?') && indicator_follows_space) ||
                 (flow > 0 && (c == '[' || c == '{' || c == ','));
    }
    // "key: |", "- >-", "key: |2": the more indented lines after it are text
    if (flow == 0 && quote == 0) {
      const std::string head = text::trim(line.substr(0, std::min(i, line.size())));
      const std::string token = head.substr(head.find_last_of(' ') == npos ? 0 : head.find_last_of(' ') + 1);
      if (!token.empty() && (token[0] == '|' || token[0] == '>') &&
          token.find_first_not_of("-+0123456789", 1) == npos)
        scalar_indent = col;
    }
  }
}

// YAML to Json, refusing more than kMaxConfigDepth levels (aliases can
// nest what the text does not) and more than kMaxYamlValues values.
struct YamlConverter {
  const std::string& name;
  std::size_t values = 0;

  Json convert(const YAML::Node& node, std::vector<std::string>& path) {
    if (++values > kMaxYamlValues)
      throw UsageError(name + ": more than " + std::to_string(kMaxYamlValues) + " values (at " + path_prefix(path) +
                           ")",
                       "YAML aliases (*name) repeat what they point to; write the configuration out plainly");
    if (node.IsSequence() || node.IsMap()) {
      if (path.size() + 1 > static_cast<std::size_t>(kMaxConfigDepth)) throw too_deep(name, path_prefix(path));
    }
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined: return nullptr;
      case YAML::NodeType::Scalar: return scalar_to_json(node);
      case YAML::NodeType::Sequence: {
        Json arr = Json::array();
        path.push_back("[]");
        for (const auto& item : node) arr.push_back(convert(item, path));
        path.pop_back();
        return arr;
      }
      case YAML::NodeType::Map: {
        Json obj = Json::object();
        for (const auto& kv : node) {
          const std::string key = kv.first.as<std::string>();
          path.push_back(key);
          obj[key] = convert(kv.second, path);
          path.pop_back();
        }
        return obj;
      }
    }
    return nullptr;
  }
};

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

// The file's text, refused past kMaxConfigBytes: a huge file is not a
// configuration, and a device such as /dev/zero would never end. Pipes
// (--config <(...)) are read like files.
std::string read_bounded(const std::string& path) {
  auto too_large = [&](const std::string& size) {  // "is 19.07 MiB: more" or "holds more"
    return UsageError("config file '" + path + "' " + size + " than the " + std::to_string(kMaxConfigBytes) +
                          " bytes (" + format_bytes(double(kMaxConfigBytes)) + ") a configuration may have",
                      "give --config a DeepSpeed JSON or YAML configuration (they are a few KiB)");
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    if (st.st_size > kMaxConfigBytes) throw too_large("is " + std::to_string(st.st_size) + " bytes: more");
    return fs::read_file(path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read config file '" + path + "'", "give --config a JSON or YAML file");
  std::string text(static_cast<std::size_t>(kMaxConfigBytes) + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > static_cast<std::size_t>(kMaxConfigBytes)) throw too_large("holds more");
  return text;
}

}  // namespace

Json parse_json_text(const std::string& text, const std::string& name) {
  check_json_depth(text, name);
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
  check_yaml_depth(text, name);
  try {
    const YAML::Node root = YAML::Load(text);
    if (root.IsNull()) return Json::object();
    std::vector<std::string> path;
    return YamlConverter{name}.convert(root, path);
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
  const std::string text = read_bounded(path);
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
