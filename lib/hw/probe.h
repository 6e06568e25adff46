// zinf::hw — can this kernel and filesystem do fast I/O?
// Implements: quick probes for io_uring (a ring can be set up), O_DIRECT
// (a file in a given directory can be opened with it and written aligned)
// and plain writability (create, write, fsync, read back, delete).
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

// Creates, writes, fsyncs, reads back and deletes a small file in `dir`.
// Returns "" when all of that works, else what failed ("cannot create a file
// in '/mnt/ro': Read-only file system (EROFS)"). validate-nvme and the
// trainer's NVMe check both probe a path this way.
std::string check_writable(const std::string& dir);

}  // namespace zinf::hw
