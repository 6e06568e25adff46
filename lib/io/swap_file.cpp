// zinf::io — SwapFile (reserved, bounds-checked, checksummed), SwapDir (per run and rank, locked) and
// reclaim_swap_dirs (what runs that are gone left behind).
#include "io/swap_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "core/pool_shape.h"
#include "core/units.h"
#include "io/aligned_buffer.h"
#include "io/checksum.h"
#include "log/log.h"

namespace zinf::io {

// ---------------------------------------------------------------- SwapFile
SwapFile::SwapFile(UringEngine& engine, std::string path, std::int64_t bytes, SwapFileOptions options)
    : engine_(engine), bytes_(bytes), options_(options) {
  if (bytes <= 0)
    throw Error("swap file '" + path + "' of " + std::to_string(bytes) + " bytes requested",
                "size swap files from the tensors they hold (a positive byte count)");
  file_ = File::open(path, OpenMode::kCreate, options.direct);
  try {
    if (options.reserve) {
      file_.reserve(round_up(bytes, kDirectAlignment));
    } else if (::ftruncate(file_.fd(), round_up(bytes, kDirectAlignment)) != 0) {
      const int err = errno;
      throw Error("cannot size swap file '" + path + "': " + errno_text(err), io_error_hint(err));
    }
  } catch (const Error&) {
    file_.close();
    ::unlink(path.c_str());  // no empty file left behind by a failed reservation
    throw;
  }
  if (options.checksums) {
    // Reserved and never written reads back as zeros: every page starts known.
    static const std::uint32_t zero_page = crc32c_zeros(kCrcPageBytes);
    page_crc_.assign(static_cast<std::size_t>(round_up(bytes, kDirectAlignment) / kDirectAlignment), zero_page);
  }
}

Request SwapFile::request(Op op, std::int64_t offset, void* data, std::int64_t bytes) {
  const char* what = op == Op::kRead ? "read" : "write";
  if (bytes <= 0 || offset < 0 || offset > bytes_ - bytes) {
    throw Error(std::string(what) + " of " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                    " does not fit swap file '" + path() + "' of " + std::to_string(bytes_) + " bytes",
                "the buffer and the swap slot disagree on the size: a tensor must be read back into a buffer "
                "of the size it was written from, at the offset it was written to");
  }
  if (offset % kDirectAlignment != 0) {
    throw Error(std::string(what) + " at offset " + std::to_string(offset) + " of swap file '" + path() +
                    "' is not a multiple of 4096",
                "place tensors at offsets rounded up to 4096 bytes");
  }
  Request r{op, &file_, offset, data, bytes};
  if (!page_crc_.empty()) r.page_crc = page_crc_.data() + offset / kDirectAlignment;
  return r;
}

Ticket SwapFile::write(std::int64_t offset, const void* src, std::int64_t bytes) {
  return engine_.submit(request(Op::kWrite, offset, const_cast<void*>(src), bytes));
}

Ticket SwapFile::read(std::int64_t offset, void* dst, std::int64_t bytes) {
  return engine_.submit(request(Op::kRead, offset, dst, bytes));
}

void SwapFile::write_now(std::int64_t offset, const void* src, std::int64_t bytes) {
  engine_.wait(write(offset, src, bytes));
}

void SwapFile::read_now(std::int64_t offset, void* dst, std::int64_t bytes) {
  engine_.wait(read(offset, dst, bytes));
}

std::int64_t swap_checksum_host_bytes(std::int64_t swap_bytes) {
  static_assert(sizeof(std::uint32_t) == 4 && kCrcPageBytes == 4096, "core/pool_shape.h counts 4 B per 4 KiB page");
  return swap_checksum_table_bytes(swap_bytes);
}

// ---------------------------------------------------------------- reclaim
namespace {

constexpr const char* kLockFile = ".lock";  // in each rank directory: the holder's PID, flock'ed while it runs
constexpr const char* kKeptFile = ".kept";  // in a rank directory kept on purpose: never reclaimed
constexpr const char* kTrashPrefix = ".reclaim-";  // a rank directory being removed: .reclaim-rank<r>-<pid>

bool digits(const std::string& s) {
  return !s.empty() && s.size() <= 9 && s.find_first_not_of("0123456789") == std::string::npos;
}

// The PID in a run id of default_run_id's form ("<yyyymmdd-hhmmss>-<pid>",
// maybe "-e<n>" after it, one per engine of the process); 0 for any other id.
long pid_in_run_id(const std::string& id) {
  std::vector<std::string> parts;
  for (std::size_t at = 0;;) {
    const std::size_t dash = id.find('-', at);
    parts.push_back(id.substr(at, dash - at));
    if (dash == std::string::npos) break;
    at = dash + 1;
  }
  const bool ok = (parts.size() == 3 || parts.size() == 4) && parts[0].size() == 8 && digits(parts[0]) &&
                  parts[1].size() == 6 && digits(parts[1]) && digits(parts[2]) &&
                  (parts.size() == 3 || (parts[3].size() > 1 && parts[3][0] == 'e' && digits(parts[3].substr(1))));
  return ok ? std::stol(parts[2]) : 0;
}

// True only when no process `pid` exists (a zombie or another user's process counts as existing).
bool process_gone(long pid) { return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH; }

// The PID written in a lock file, "unknown" when it holds none.
std::string holder_of(int fd) {
  char buf[16] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string pid(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return digits(pid) ? pid : "unknown";
}

// True when `path` is still the file open as `fd` (a reclaim may have moved it away).
bool still_at(int fd, const std::string& path) {
  struct stat open_st {}, path_st {};
  return ::fstat(fd, &open_st) == 0 && ::stat(path.c_str(), &path_st) == 0 && open_st.st_dev == path_st.st_dev &&
         open_st.st_ino == path_st.st_ino;
}

// Disk space the files under `dir` take (allocated blocks).
std::int64_t disk_bytes(const std::string& dir) {
  std::int64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec); !ec && it != decltype(it)(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) total += std::int64_t(st.st_blocks) * 512;
  }
  return total;
}

std::vector<std::filesystem::directory_entry> entries_of(const std::string& dir) {
  std::vector<std::filesystem::directory_entry> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != decltype(it)(); it.increment(ec))
    out.push_back(*it);
  return out;
}

bool real_dir(const std::filesystem::directory_entry& e) {
  std::error_code ec;
  return e.is_directory(ec) && !e.is_symlink(ec);
}

// Frees one abandoned rank directory: renamed out of the way first, so a run
// starting under the same name never meets half of it, then removed.
void free_dir(const std::string& run_dir, const std::string& dir, const std::string& name, const std::string& owner,
              std::vector<ReclaimedDir>& out) {
  ReclaimedDir r{dir, disk_bytes(dir), owner};
  std::string gone = dir;
  if (name.rfind(kTrashPrefix, 0) != 0) {
    const std::string trash = run_dir + "/" + kTrashPrefix + name + "-" + std::to_string(::getpid());
    std::error_code ec;
    std::filesystem::rename(dir, trash, ec);
    if (!ec) gone = trash;
  }
  try {
    fs::remove_all(gone);
  } catch (const Error& e) {
    log::warn("cannot reclaim swap directory '" + dir + "' left by process " + owner + ": " + e.what());
    return;
  }
  log::info("reclaimed swap directory '" + dir + "' left by process " + owner + ", which is gone: " +
            format_bytes(double(r.bytes)) + " freed");
  out.push_back(std::move(r));
}

}  // namespace

std::vector<ReclaimedDir> reclaim_swap_dirs(const std::string& root) {
  std::vector<ReclaimedDir> out;
  for (const auto& run : entries_of(root)) {
    const std::string run_name = run.path().filename().string();
    if (run_name.rfind("zinf-", 0) != 0 || !real_dir(run)) continue;
    const std::string run_id = run_name.substr(5);
    const std::string run_dir = run.path().string();
    const std::size_t before = out.size();
    for (const auto& rank : entries_of(run_dir)) {
      const std::string name = rank.path().filename().string();
      const std::string dir = rank.path().string();
      if (!real_dir(rank)) continue;
      if (name.rfind(kTrashPrefix, 0) == 0) {  // a reclaim that was itself killed
        const std::string pid = name.substr(name.rfind('-') + 1);
        if (digits(pid) && process_gone(std::stol(pid))) free_dir(run_dir, dir, name, pid, out);
        continue;
      }
      if (name.rfind("rank", 0) != 0 || !digits(name.substr(4))) continue;
      if (fs::exists(dir + "/" + kKeptFile)) continue;
      const std::string lock = dir + "/" + kLockFile;
      const int fd = ::open(lock.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
      if (fd >= 0) {
        // A free lock whose holder is gone (the kernel lets go of a dead
        // process's locks). A free lock naming a live process, or none, may
        // be a run between creating its lock file and locking it: the PID in
        // its run id then says it is alive.
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && still_at(fd, lock)) {
          std::string owner = holder_of(fd);
          if (owner == "unknown" && pid_in_run_id(run_id) > 0) owner = std::to_string(pid_in_run_id(run_id));
          if (owner != "unknown" && process_gone(std::stol(owner))) free_dir(run_dir, dir, name, owner, out);
        }
        ::close(fd);
      } else if (errno == ENOENT) {
        // No lock file (made before it was written, or by an older zinf): only
        // zinf's own run ids say whose it is.
        const long pid = pid_in_run_id(run_id);
        if (process_gone(pid)) free_dir(run_dir, dir, name, std::to_string(pid), out);
      }
    }
    std::error_code ec;
    if (out.size() > before) std::filesystem::remove(run_dir, ec);  // only once no rank is left in it
  }
  return out;
}

// ---------------------------------------------------------------- SwapDir
SwapDir::SwapDir(const std::string& root, const std::string& run_id, int rank, bool keep) : keep_(keep) {
  if (run_id.empty() || run_id.find('/') != std::string::npos)
    throw UsageError("swap run id '" + run_id + "' is empty or contains '/'");
  if (rank < 0) throw UsageError("swap directory for negative rank " + std::to_string(rank));
  reclaimed_ = reclaim_swap_dirs(root);
  run_dir_ = root + "/zinf-" + run_id;
  path_ = run_dir_ + "/rank" + std::to_string(rank);
  const std::string lock = path_ + "/" + kLockFile;
  for (int attempt = 1; lock_fd_ < 0; ++attempt) {
    fs::make_dirs(path_);
    const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
      const int err = errno;
      if (err == ENOENT && attempt < 3) continue;  // a reclaim moved the directory away meanwhile
      throw Error("cannot create the lock file '" + lock + "': " + errno_text(err), io_error_hint(err));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const std::string holder = holder_of(fd);
      ::close(fd);
      if (err == EWOULDBLOCK && holder != "unknown" && process_gone(std::stol(holder)) && attempt < 3) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a reclaim of the dead holder's directory
        continue;
      }
      if (err == EWOULDBLOCK)
        throw Error("swap directory '" + path_ + "' is in use by process " + holder + " (it holds " + lock + ")",
                    "two runs cannot share a swap directory: wait for process " + holder +
                        " to finish or stop it, or give this run another offload path (--nvme-offload-path)");
      throw Error("cannot lock '" + lock + "': " + errno_text(err),
                  "the offload path must be on a filesystem with flock (a local ext4/xfs disk)");
    }
    if (still_at(fd, lock)) {
      lock_fd_ = fd;
    } else {
      ::close(fd);  // a reclaim removed that lock file between open and flock: start over
      if (attempt >= 3)
        throw Error("swap directory '" + path_ + "' kept changing while this run locked it",
                    "another process creates and removes it: give this run its own offload path");
    }
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size()))
    log::warn("cannot write this process's PID into '" + lock + "': " + errno_text(errno) +
              "; a second run would be refused without naming this one, and a kill -9 would leave the "
              "directory for good");
  try {
    bool leftover = false;
    for (const auto& e : entries_of(path_)) {
      if (e.path().filename() == kLockFile) continue;
      leftover = true;
      fs::remove_all(e.path().string());
    }
    if (leftover)
      log::warn("removed leftover files in swap directory '" + path_ + "' from an earlier run with the same id");
  } catch (const Error&) {
    ::close(lock_fd_);  // no destructor runs for a constructor that throws
    throw;
  }
}

SwapDir::~SwapDir() {
  if (keep_) {
    std::ofstream(path_ + "/" + kKeptFile) << "kept by process " << ::getpid() << " (keep_swap_files)\n";
    log::info("keeping swap files in '" + path_ + "'");
  } else {
    fs::remove_all(path_);
    std::error_code ec;
    std::filesystem::remove(run_dir_, ec);  // only succeeds once every rank has cleaned up
  }
  ::close(lock_fd_);  // lets the lock go (a kept directory is marked, not reclaimed)
}

std::string SwapDir::file_path(const std::string& name) const {
  const bool ok = !name.empty() && name != "." && name != ".." &&
                  name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
                      std::string::npos;
  if (!ok)
    throw Error("swap file name '" + name + "' is not allowed",
                "use letters, digits, '.', '_' and '-' (what the file holds, e.g. optimizer.group003)");
  return path_ + "/" + name + ".swp";
}

std::unique_ptr<SwapFile> SwapDir::create(UringEngine& engine, const std::string& name, std::int64_t bytes,
                                          SwapFileOptions options) const {
  return std::make_unique<SwapFile>(engine, file_path(name), bytes, options);
}

std::string default_run_id() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  return std::string(stamp) + "-" + std::to_string(::getpid());
}

}  // namespace zinf::io
