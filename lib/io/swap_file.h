// zinf::io — swap files: where offloaded model state lives on NVMe.
// Implements: SwapDir, one directory per run and rank under the offload path
// (<root>/zinf-<run id>/rank<r>/), held for the life of the run by an
// exclusive flock on <rankdir>/.lock (which names the holder's PID, so a
// second run wanting it is refused naming that PID) and removed at the end of
// the run unless asked to keep it; reclaim_swap_dirs, which frees what runs
// that are gone (kill -9, power loss) left under a root, and only that;
// SwapFile, one file per thing it holds ("optimizer.group003.swp"),
// with its space reserved up front (fallocate) so a full disk is found at
// start, bounds-checked reads and writes through the UringEngine, and a
// CRC32C per 4096-byte page of the file, whatever aio.block_size is: pages
// start as known zeros (fallocate), writes record what they put on disk,
// and every read verifies every page it touches, so no byte read back goes
// unchecked (swap_checksum_host_bytes says what the table costs in host
// memory). (The space a configuration needs is lib/plan's estimate.)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/file.h"
#include "io/uring_engine.h"

namespace zinf::io {

struct SwapFileOptions {
  bool checksums = true;  // CRC32C per 4096-byte page on write, verified on every read
  bool direct = true;     // O_DIRECT (buffered fallback with a warning where refused)
  bool reserve = true;    // fallocate the whole file at creation
};

class SwapFile {
 public:
  // Creates (or truncates) `path` to hold `bytes` (> 0) and reserves
  // round_up(bytes, 4096) on disk. Throws naming the path, the size and the
  // free space when the disk cannot hold it.
  SwapFile(UringEngine& engine, std::string path, std::int64_t bytes, SwapFileOptions options = {});
  SwapFile(const SwapFile&) = delete;
  SwapFile& operator=(const SwapFile&) = delete;

  const std::string& path() const { return file_.path(); }
  std::int64_t size() const { return bytes_; }   // bytes it holds
  bool direct() const { return file_.direct(); }

  // Asynchronous: wait on the ticket with engine().wait(). `offset` is a
  // multiple of 4096; [offset, offset+bytes) must lie inside size(). A write
  // ending inside a page zeroes the rest of that page. A read whose data
  // differs from what was written there (or from zeros, where nothing was)
  // fails with "checksum mismatch reading N bytes from '<file>' at offset X".
  // Callers must not overlap a read and a write of the same page.
  Ticket write(std::int64_t offset, const void* src, std::int64_t bytes);
  Ticket read(std::int64_t offset, void* dst, std::int64_t bytes);
  // Synchronous forms.
  void write_now(std::int64_t offset, const void* src, std::int64_t bytes);
  void read_now(std::int64_t offset, void* dst, std::int64_t bytes);

  UringEngine& engine() const { return engine_; }
  const File& file() const { return file_; }

 private:
  Request request(Op op, std::int64_t offset, void* data, std::int64_t bytes);
  UringEngine& engine_;
  File file_;
  std::int64_t bytes_ = 0;
  SwapFileOptions options_;
  std::vector<std::uint32_t> page_crc_;  // [ceil(bytes / 4096)] CRC32C of each page as on disk; empty without checksums
};

// Host memory the checksum table of `swap_bytes` bytes of swap files takes
// (4 bytes per 4096-byte page, 0.1%).
std::int64_t swap_checksum_host_bytes(std::int64_t swap_bytes);

// A swap directory reclaim_swap_dirs removed.
struct ReclaimedDir {
  std::string path;         // <root>/zinf-<run id>/rank<r>
  std::int64_t bytes = 0;   // disk space its files took (allocated blocks)
  std::string owner;        // the PID that held it, as its lock file or run id said
};

// Removes the rank directories under `root` whose run is provably gone:
// <root>/zinf-<run id>/rank<r>/ whose .lock nobody holds and names a process
// that no longer exists, or, with no .lock, whose run id is zinf's own
// ("<yyyymmdd-hhmmss>-<pid>[-e<n>]") and names such a process (a PID reused
// since keeps a directory: never a wrong guess). Never touches a directory a live run holds,
// one kept on purpose (keep_swap_files), or anything not named like zinf's.
// Logs each with log::info (path and bytes) and returns them. A root that
// does not exist holds nothing.
std::vector<ReclaimedDir> reclaim_swap_dirs(const std::string& root);

class SwapDir {
 public:
  // Reclaims abandoned swap directories under `root` (reclaim_swap_dirs), then
  // creates and locks <root>/zinf-<run_id>/rank<rank>/ (root is created when
  // missing). Throws naming the holder's PID when another live run holds it.
  // A leftover directory of the same name nobody holds is emptied first.
  SwapDir(const std::string& root, const std::string& run_id, int rank, bool keep = false);
  // Removes the rank directory (and the run directory once empty) unless
  // keep, and lets the lock go; kept directories are marked so no later run
  // reclaims them.
  ~SwapDir();
  SwapDir(const SwapDir&) = delete;
  SwapDir& operator=(const SwapDir&) = delete;

  const std::string& path() const { return path_; }
  // "<path>/<name>.swp"; `name` says what the file holds, [A-Za-z0-9._-] only.
  std::string file_path(const std::string& name) const;
  std::unique_ptr<SwapFile> create(UringEngine& engine, const std::string& name, std::int64_t bytes,
                                   SwapFileOptions options = {}) const;
  // What the constructor reclaimed under the root.
  const std::vector<ReclaimedDir>& reclaimed() const { return reclaimed_; }

 private:
  std::string run_dir_;
  std::string path_;
  bool keep_ = false;
  int lock_fd_ = -1;  // open .lock, flock(LOCK_EX) held for the life of the object
  std::vector<ReclaimedDir> reclaimed_;
};

// A run id unique on this host: "<yyyymmdd-hhmmss>-<pid>".
std::string default_run_id();

}  // namespace zinf::io
