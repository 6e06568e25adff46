// core: DirLock takes a directory for one process at a time, names the holder
// to the next one, is free again when the holder dies (kill -9 included), and
// leaves no lock file behind once released.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <optional>

#include "core/dir_lock.h"
#include "core/error.h"
#include "support/test_util.h"

using zinf::DirLock;
using zinf::test::TempDir;

namespace {

// A child process that takes the lock, says so through a pipe, and waits to be killed.
pid_t child_holding(const std::string& dir) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    try {
      DirLock lock = DirLock::acquire(dir, "test directory", "holder");
      const char ok = 1;
      (void)!::write(fds[1], &ok, 1);
      for (;;) ::pause();
    } catch (...) {
      ::_exit(1);
    }
  }
  ::close(fds[1]);
  char ok = 0;
  REQUIRE(::read(fds[0], &ok, 1) == 1);
  ::close(fds[0]);
  return pid;
}

}  // namespace

TEST_CASE("a second process is refused with the holder's PID, and gets the lock once the holder is killed") {
  TempDir dir;
  const pid_t holder = child_holding(dir.path());
  const std::string message = zinf::test::error_of([&] { DirLock::acquire(dir.path(), "test directory", "second"); });
  CHECK(message.find("test directory '" + dir.path() + "' is in use by pid " + std::to_string(holder) + " (holder)") !=
        std::string::npos);
  CHECK_FALSE(DirLock::try_acquire(dir.path(), "second").has_value());
  try {
    DirLock::acquire(dir.path(), "test directory", "second");
  } catch (const zinf::Error& e) {
    CHECK(e.code() == zinf::ExitCode::kUsage);
  }

  ::kill(holder, SIGKILL);
  ::waitpid(holder, nullptr, 0);
  // The dead holder's file is still there, but its lock went with it.
  CHECK(std::filesystem::exists(dir.file(".zinf.lock")));
  std::optional<DirLock> mine = DirLock::try_acquire(dir.path(), "second");
  REQUIRE(mine.has_value());
  CHECK(zinf::describe_lock_holder(mine->path()) == "pid " + std::to_string(::getpid()) + " (second)");
  mine->release();
  CHECK_FALSE(std::filesystem::exists(dir.file(".zinf.lock")));
}

TEST_CASE("within one process a lock is exclusive too, and moving it keeps it held") {
  TempDir dir;
  DirLock first = DirLock::acquire(dir.path(), "test directory", "first", "custom.lock");
  CHECK(first.path() == dir.file("custom.lock"));
  CHECK_FALSE(DirLock::try_acquire(dir.path(), "again", "custom.lock").has_value());
  DirLock moved = std::move(first);
  CHECK_FALSE(DirLock::try_acquire(dir.path(), "again", "custom.lock").has_value());
  moved.release();
  CHECK(DirLock::try_acquire(dir.path(), "again", "custom.lock").has_value());
}

TEST_CASE("a lock file that is not ours is not echoed, and a missing directory is a clear error") {
  TempDir dir;
  zinf::test::write_text(dir.file("junk.lock"), std::string("\x01\x02 binary garbage \xff", 19));
  CHECK(zinf::describe_lock_holder(dir.file("junk.lock")).empty());
  const std::string message =
      zinf::test::error_of([&] { DirLock::acquire(dir.file("absent"), "output directory", "x"); });
  CHECK(message.find("cannot create the lock file '" + dir.file("absent") + "/.zinf.lock'") != std::string::npos);
  CHECK(message.find("ENOENT") != std::string::npos);
}
