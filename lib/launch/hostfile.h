// zinf::launch — DeepSpeed hostfiles.
// Implements: parsing of DeepSpeed's hostfile format, one host per line as
// `hostname slots=N`, with `#` comments and blank lines; errors name the file
// and the line.
#pragma once

#include <string>
#include <vector>

namespace zinf::launch {

struct Host {
  std::string name;  // hostname or address, as ssh should see it
  int slots = 0;     // processes (GPUs) this host offers, >= 1
  int line = 0;      // 1-based line in the hostfile
};

// Parses hostfile text; `path` is only used in messages. Throws UsageError
// (with the line number) for a line that is not `host slots=N`, N < 1, a
// repeated host, or a file with no hosts.
std::vector<Host> parse_hostfile(const std::string& text, const std::string& path);

// Reads and parses the file at `path`.
std::vector<Host> read_hostfile(const std::string& path);

}  // namespace zinf::launch
