// zinf::launch — DeepSpeed hostfile parsing.
#include "launch/hostfile.h"

#include <cctype>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"

namespace zinf::launch {

std::vector<Host> parse_hostfile(const std::string& text, const std::string& path) {
  const std::string format_hint = "each line is `hostname slots=N` (N >= 1); `#` starts a comment";
  std::vector<Host> hosts;
  int line_no = 0;
  for (const std::string& raw : text::split(text, '\n')) {
    ++line_no;
    std::string line = raw.substr(0, raw.find('#'));
    line = text::trim(line);
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    // Tokens separated by any whitespace.
    std::vector<std::string> tokens;
    std::string cur;
    for (char c : line) {
      if (std::isspace(static_cast<unsigned char>(c))) {
        if (!cur.empty()) tokens.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    if (!cur.empty()) tokens.push_back(cur);
    if (tokens.size() != 2 || !text::starts_with(tokens[1], "slots="))
      throw UsageError(where + ": expected `hostname slots=N`, got '" + line + "'", format_hint);
    const std::string count = tokens[1].substr(6);
    int slots = 0;
    bool ok = !count.empty() && count.size() <= 6;
    for (char c : count) {
      if (!std::isdigit(static_cast<unsigned char>(c))) ok = false;
      else slots = slots * 10 + (c - '0');
    }
    if (!ok || slots < 1)
      throw UsageError(where + ": slots='" + count + "' is not a whole number >= 1", format_hint);
    for (const Host& h : hosts)
      if (h.name == tokens[0])
        throw UsageError(where + ": host '" + tokens[0] + "' is listed twice (first on line " + std::to_string(h.line) + ")",
                         "list each host once with all its slots");
    hosts.push_back({tokens[0], slots, line_no});
  }
  if (hosts.empty()) throw UsageError(path + " lists no hosts", format_hint);
  return hosts;
}

std::vector<Host> read_hostfile(const std::string& path) {
  if (!fs::exists(path))
    throw UsageError("hostfile " + path + " does not exist", "pass --hostfile the path of a DeepSpeed-style hostfile");
  return parse_hostfile(fs::read_file(path), path);
}

}  // namespace zinf::launch
