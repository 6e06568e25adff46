// zinf::core — DirLock: flock(2) on a lock file that names its holder.
#include "core/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "core/error.h"

namespace zinf {

std::optional<DirLock> DirLock::try_acquire(const std::string& dir, const std::string& purpose,
                                            const std::string& file_name) {
  const std::string path = dir + "/" + file_name;
  // A holder removes the file before it lets go, so the file we locked may
  // no longer be the one at `path`: then we lost a race with a release and
  // try again on the new file.
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      const int err = errno;
      throw Error("cannot create the lock file '" + path + "': " + errno_text(err),
                  err == EROFS || err == EACCES ? "the directory must be writable by this user"
                                                : "check the directory exists and is writable");
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK || err == EINTR) return std::nullopt;
      throw Error("cannot lock '" + path + "': " + errno_text(err),
                  "the file system must support flock (local disks and NFSv4 do)");
    }
    struct stat held {}, named {};
    if (::fstat(fd, &held) != 0 || ::stat(path.c_str(), &named) != 0 || held.st_ino != named.st_ino ||
        held.st_dev != named.st_dev) {
      ::close(fd);
      continue;
    }
    const std::string text = "pid " + std::to_string(::getpid()) + " (" + purpose + ")\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
      const int err = errno;
      ::unlink(path.c_str());
      ::close(fd);
      throw Error("cannot write the lock file '" + path + "': " + errno_text(err),
                  "the directory must be writable and its disk not full");
    }
    return DirLock(path, fd);
  }
  throw Error("cannot lock '" + path + "': it kept being replaced while locking",
              "another program is removing files in that directory; stop it and try again");
}

DirLock DirLock::acquire(const std::string& dir, const std::string& what, const std::string& purpose,
                         const std::string& file_name) {
  std::optional<DirLock> lock = try_acquire(dir, purpose, file_name);
  if (lock) return std::move(*lock);
  const std::string path = dir + "/" + file_name;
  std::string holder = describe_lock_holder(path);
  if (holder.empty()) holder = "another process";
  throw UsageError(what + " '" + dir + "' is in use by " + holder + " (lock " + path + ")",
                   "wait for that run to finish, stop it, or choose another directory; two runs writing into one "
                   "directory would destroy each other's files");
}

DirLock::DirLock(DirLock&& other) noexcept : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

DirLock& DirLock::operator=(DirLock&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

DirLock::~DirLock() { release(); }

void DirLock::release() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still held: whoever locks next makes a new file
  ::close(fd_);
  fd_ = -1;
}

std::string describe_lock_holder(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[256];
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  ::close(fd);
  if (n <= 0) return {};
  std::string text(buf, static_cast<std::size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  // Only what a lock file of ours looks like; anything else is not echoed.
  if (text.rfind("pid ", 0) != 0 || text.find_first_of("\n\r") != std::string::npos) return {};
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return {};
  return text;
}

}  // namespace zinf
