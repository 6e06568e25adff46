// zinf::core — exclusive locks on directories a run owns.
// Implements: DirLock, an flock(2) on a lock file inside a directory, held
// for the life of the object (and so of the process: the kernel drops it when
// the process dies, kill -9 included). The file holds the holder's PID and
// what it is doing, so a second run that finds the lock taken can name who
// holds it. Used for a run's output directory (train) and its swap
// directories (io), so two runs never write into the same place.
#pragma once

#include <optional>
#include <string>

namespace zinf {

class DirLock {
 public:
  // Takes the lock on `dir`/`file_name` (dir must exist), or throws
  // zinf::Error (exit code 2) naming `what`, the directory and the PID that
  // holds it. `purpose` is recorded for the next one to read ("zinf train").
  static DirLock acquire(const std::string& dir, const std::string& what, const std::string& purpose,
                         const std::string& file_name = ".zinf.lock");
  // The same, but nullopt instead of an error when another process holds it.
  static std::optional<DirLock> try_acquire(const std::string& dir, const std::string& purpose,
                                            const std::string& file_name = ".zinf.lock");

  DirLock(DirLock&& other) noexcept;
  DirLock& operator=(DirLock&& other) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  // Removes the lock file, then releases the lock.
  ~DirLock();

  const std::string& path() const { return path_; }
  // Gives the lock up now (as the destructor does).
  void release();

 private:
  DirLock(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_ = -1;
};

// What the lock file at `path` says about its holder ("pid 1234 (zinf
// train)"), or "" when it cannot be read.
std::string describe_lock_holder(const std::string& path);

}  // namespace zinf
