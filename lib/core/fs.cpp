// zinf::core — checked file-system helpers.
#include "core/fs.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace zinf::fs {
namespace {

std::string access_hint(int err) {
  if (err == EACCES || err == EPERM) return "check the permissions of the directory, or choose another path";
  if (err == EROFS) return "the filesystem is mounted read-only; choose a writable path";
  if (err == ENOSPC || err == EDQUOT) return "free some space or choose a path on a larger disk";
  return {};
}

}  // namespace

void make_dirs(const std::string& path) {
  // Create first, judge after: ranks of one run create the same directories
  // at once, so "absent, then present" between two checks is no error.
  std::error_code ec, probe;
  std::filesystem::create_directories(path, ec);
  if (std::filesystem::is_directory(path, probe)) return;
  if (std::filesystem::exists(path, probe))
    throw Error("'" + path + "' exists and is not a directory", "choose a directory path");
  const int err = ec ? ec.value() : ENOENT;
  throw Error("cannot create directory '" + path + "': " + errno_text(err), access_hint(err));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw Error("cannot read '" + path + "': " + errno_text(err),
                err == ENOENT ? "check the path" : access_hint(err));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file_atomic(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    throw Error("cannot write '" + path + "': " + errno_text(err), access_hint(err));
  }
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error("cannot write '" + path + "' (" + std::to_string(data.size()) +
                      " bytes): " + errno_text(err),
                  access_hint(err));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error("cannot flush '" + path + "': " + errno_text(err), access_hint(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error("cannot rename '" + tmp + "' to '" + path + "': " + errno_text(err),
                access_hint(err));
  }
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::int64_t free_bytes(const std::string& path) {
  struct statvfs vfs;
  if (::statvfs(path.c_str(), &vfs) != 0) {
    const int err = errno;
    throw Error("cannot query free space of '" + path + "': " + errno_text(err));
  }
  return static_cast<std::int64_t>(vfs.f_bavail) * static_cast<std::int64_t>(vfs.f_frsize);
}

std::string nearest_existing(const std::string& path) {
  std::filesystem::path p = std::filesystem::absolute(path);
  std::error_code ec;
  while (!p.empty() && !std::filesystem::exists(p, ec)) {
    if (p == p.parent_path()) break;
    p = p.parent_path();
  }
  return p.string();
}

namespace {
int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);  // best effort: what cannot be removed stays, like rm -rf -f
  return 0;
}
}  // namespace

// nftw rather than std::filesystem::remove_all: PyTorch 2.x's libtorch.so exports
// its own std::filesystem::remove_all, which crashes when it interposes ours
// (seen on the GPU host: a call through a null pointer).
void remove_all(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISDIR(st.st_mode)) {
    ::unlink(path.c_str());
    return;
  }
  ::nftw(path.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS);
}

}  // namespace zinf::fs
