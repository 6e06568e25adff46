// zinf::hw — io_uring and O_DIRECT probes.
#include "hw/probe.h"

#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace zinf::hw {

// Creates, writes, fsyncs, reads back and deletes a small file in `dir`.
// Returns an empty string when all of that works, else what failed.
std::string check_writable(const std::string& dir) {
  const std::string file = dir + "/.zinf-validate." + std::to_string(::getpid());
  const int fd = ::open(file.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return "cannot create a file in '" + dir + "': " + errno_text(errno);
  std::string pattern(4096, '\0');
  for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<char>(i * 31 + 7);
  std::string failure;
  if (::pwrite(fd, pattern.data(), pattern.size(), 0) != static_cast<ssize_t>(pattern.size()))
    failure = "cannot write to '" + file + "': " + errno_text(errno);
  else if (::fsync(fd) != 0)
    failure = "cannot fsync '" + file + "': " + errno_text(errno);
  if (failure.empty()) {
    std::string back(pattern.size(), '\0');
    if (::pread(fd, back.data(), back.size(), 0) != static_cast<ssize_t>(back.size()))
      failure = "cannot read back '" + file + "': " + errno_text(errno);
    else if (back != pattern)
      failure = "data read back from '" + file + "' differs from what was written";
  }
  ::close(fd);
  if (::unlink(file.c_str()) != 0 && failure.empty())
    failure = "cannot delete '" + file + "': " + errno_text(errno);
  return failure;
}


IoSupport probe_io(const std::string& dir) {
  IoSupport s;
  io_uring ring;
  const int rc = io_uring_queue_init(2, &ring, 0);
  if (rc == 0) {
    s.io_uring = true;
    io_uring_queue_exit(&ring);
  } else {
    s.io_uring_error = errno_text(-rc);
  }
  const std::string path = dir + "/.zinf-odirect-probe." + std::to_string(::getpid());
  const int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
  if (fd < 0) {
    s.o_direct_error = errno_text(errno);
    return s;
  }
  void* buf = nullptr;
  if (::posix_memalign(&buf, 4096, 4096) == 0) {
    std::memset(buf, 0, 4096);
    if (::pwrite(fd, buf, 4096, 0) == 4096)
      s.o_direct = true;
    else
      s.o_direct_error = errno_text(errno);
    std::free(buf);
  }
  ::close(fd);
  ::unlink(path.c_str());
  return s;
}

}  // namespace zinf::hw
