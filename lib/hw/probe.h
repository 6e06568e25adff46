// zinf::hw — can this kernel and filesystem do fast I/O?
// Implements: quick probes for io_uring (a ring can be set up) and O_DIRECT
// (a file in a given directory can be opened with it and written aligned).
#pragma once

#include <string>

namespace zinf::hw {

struct IoSupport {
  bool io_uring = false;
  std::string io_uring_error;  // why not, when not
  bool o_direct = false;
  std::string o_direct_error;
};

// Probes io_uring, and O_DIRECT in `dir` (which must exist and be writable).
IoSupport probe_io(const std::string& dir);

}  // namespace zinf::hw
