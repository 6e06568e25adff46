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
