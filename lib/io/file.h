// zinf::io — files the engine reads and writes.
// Implements: File, an open file descriptor with its path and whether it is in
// O_DIRECT mode. Opening asks for O_DIRECT and, where the filesystem refuses it
// (some network and FUSE filesystems, ramfs), reopens buffered and warns once
// per directory saying why and what it costs. Space reservation (fallocate)
// and every failure come back as zinf::Error naming the path. Also the
// test-only fault hook the engine consults before each operation.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace zinf::io {

enum class OpenMode {
  kRead,       // existing file, read only
  kReadWrite,  // existing file
  kCreate,     // create or truncate, read and write
};

class File {
 public:
  File() = default;
  // Opens `path`. `direct`: ask for O_DIRECT; when the filesystem refuses it,
  // falls back to buffered I/O with one warning (or throws when
  // `allow_buffered` is false).
  static File open(const std::string& path, OpenMode mode, bool direct = true, bool allow_buffered = true);
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }
  bool direct() const { return direct_; }   // true: O_DIRECT, offsets and lengths padded to 4096
  bool is_open() const { return fd_ >= 0; }
  std::string why_buffered() const { return why_buffered_; }  // errno text when O_DIRECT was refused

  // Current size in bytes (fstat).
  std::int64_t size() const;
  // Allocates [0, bytes) on disk now (fallocate), so a full disk shows up here
  // and not halfway through a training step. Throws naming free and needed space.
  void reserve(std::int64_t bytes);
  // Flushes written data to the device (fdatasync).
  void sync();
  void close();

 private:
  std::string path_;
  int fd_ = -1;
  bool direct_ = false;
  std::string why_buffered_;
};

// A hint for an errno an I/O call returned (ENOSPC, EIO, EFBIG, ...); empty when none fits.
std::string io_error_hint(int err);

// ---------------------------------------------------------------- test hook
namespace testing {

enum class FaultSite { kRingSetup, kOpenDirect, kReserve, kRead, kWrite };

// Called before the operation; a non-zero return is the errno the operation
// fails with instead of running. Tests only: production code never sets it.
using FaultHook = std::function<int(FaultSite site, const std::string& path, std::int64_t offset)>;
void set_fault_hook(FaultHook hook);  // an empty function clears it
int fault(FaultSite site, const std::string& path, std::int64_t offset);  // 0 when no hook or no fault

}  // namespace testing
}  // namespace zinf::io
