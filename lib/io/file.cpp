// zinf::io — File: open with O_DIRECT (buffered fallback), reserve, sync; the fault hook.
#include "io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <mutex>
#include <utility>

#include "core/error.h"
#include "core/fs.h"
#include "core/units.h"
#include "log/log.h"

namespace zinf::io {

// ---------------------------------------------------------------- fault hook
namespace testing {
namespace {
std::mutex& hook_mutex() {
  static std::mutex m;
  return m;
}
FaultHook& hook() {
  static FaultHook h;
  return h;
}
}  // namespace

void set_fault_hook(FaultHook h) {
  std::lock_guard<std::mutex> lock(hook_mutex());
  hook() = std::move(h);
}

int fault(FaultSite site, const std::string& path, std::int64_t offset) {
  std::lock_guard<std::mutex> lock(hook_mutex());
  return hook() ? hook()(site, path, offset) : 0;
}
}  // namespace testing

// ---------------------------------------------------------------- File
std::string io_error_hint(int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return "the disk is full: free space, offload less to NVMe, or use a larger disk; "
             "`zinf validate-nvme PATH --required-gb N` checks a path before a run";
    case EIO:
      return "the device reported an I/O error: check `dmesg` and the drive's health (smartctl), "
             "and move the offload path to another disk";
    case EFBIG:
      return "the file size limit was hit (`ulimit -f`, or the filesystem's maximum file size)";
    case EACCES:
    case EPERM:
      return "check the permissions of the offload directory";
    case EROFS:
      return "the filesystem is read-only: choose a writable offload path";
    case EINVAL:
      return "the filesystem refused the request (O_DIRECT alignment or an unsupported operation); "
             "try a local ext4 or xfs disk";
    default:
      return {};
  }
}

File File::open(const std::string& path, OpenMode mode, bool direct, bool allow_buffered) {
  int flags = O_CLOEXEC;
  switch (mode) {
    case OpenMode::kRead: flags |= O_RDONLY; break;
    case OpenMode::kReadWrite: flags |= O_RDWR; break;
    case OpenMode::kCreate: flags |= O_RDWR | O_CREAT | O_TRUNC; break;
  }
  File f;
  f.path_ = path;
  if (direct) {
    int err = testing::fault(testing::FaultSite::kOpenDirect, path, 0);
    int fd = -1;
    if (err == 0) {
      fd = ::open(path.c_str(), flags | O_DIRECT, 0600);
      if (fd < 0) err = errno;
    }
    if (fd >= 0) {
      f.fd_ = fd;
      f.direct_ = true;
      return f;
    }
    // EINVAL is how Linux says "this filesystem does not do O_DIRECT"; any
    // other errno (ENOENT, EACCES, ...) is a real failure reported below.
    if (err != EINVAL) {
      throw Error("cannot open '" + path + "': " + errno_text(err),
                  err == ENOENT ? "check the path (the offload directory may have been removed)" : io_error_hint(err));
    }
    const std::string dir = std::filesystem::path(path).parent_path().string();
    if (!allow_buffered) {
      throw Error("the filesystem holding '" + dir + "' refuses O_DIRECT (" + errno_text(err) + ")",
                  "put the offload path on a local ext4/xfs disk, or allow buffered I/O");
    }
    f.why_buffered_ = errno_text(err);
    log::warn_once("io.buffered:" + dir,
                   "O_DIRECT is not supported in '" + dir + "' (" + f.why_buffered_ +
                       "); using buffered I/O there. Every byte is copied through the page cache: more CPU "
                       "per GB, RAM taken by cached swap data, and bandwidth that varies with memory "
                       "pressure. Use a local ext4/xfs NVMe path for direct I/O.");
  }
  const int fd = ::open(path.c_str(), flags, 0600);
  if (fd < 0) {
    const int err = errno;
    throw Error("cannot open '" + path + "': " + errno_text(err),
                err == ENOENT ? "check the path (the offload directory may have been removed)" : io_error_hint(err));
  }
  f.fd_ = fd;
  f.direct_ = false;
  return f;
}

File::~File() { close(); }

File::File(File&& o) noexcept
    : path_(std::move(o.path_)), fd_(std::exchange(o.fd_, -1)), direct_(o.direct_),
      why_buffered_(std::move(o.why_buffered_)) {}

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    close();
    path_ = std::move(o.path_);
    fd_ = std::exchange(o.fd_, -1);
    direct_ = o.direct_;
    why_buffered_ = std::move(o.why_buffered_);
  }
  return *this;
}

void File::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::int64_t File::size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) throw Error("cannot stat '" + path_ + "': " + errno_text(errno));
  return static_cast<std::int64_t>(st.st_size);
}

void File::reserve(std::int64_t bytes) {
  if (bytes <= 0) return;
  int err = testing::fault(testing::FaultSite::kReserve, path_, 0);
  if (err == 0) {
    while (::fallocate(fd_, 0, 0, bytes) != 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
  }
  if (err == 0) return;
  if (err == EOPNOTSUPP) {
    // The filesystem cannot preallocate (some network filesystems): size the
    // file so reads and writes stay in range, and say the space is not held.
    if (::ftruncate(fd_, bytes) == 0) {
      log::warn_once("io.noreserve", "the filesystem holding '" + path_ +
                                         "' cannot reserve space (fallocate unsupported); a full disk will "
                                         "only be noticed when a write fails");
      return;
    }
    err = errno;
  }
  std::string free_text;
  try {
    free_text = ", " + format_gb(double(fs::free_bytes(path_))) + " free";
  } catch (const Error&) {
  }
  throw Error("cannot reserve " + format_gb(double(bytes)) + " for swap file '" + path_ + "': " + errno_text(err) +
                  free_text,
              io_error_hint(err));
}

void File::sync() {
  if (::fdatasync(fd_) != 0) {
    const int err = errno;
    throw Error("cannot flush '" + path_ + "' to disk: " + errno_text(err), io_error_hint(err));
  }
}

}  // namespace zinf::io
