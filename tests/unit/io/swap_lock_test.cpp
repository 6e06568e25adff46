// io: a swap directory belongs to one live run (an flock on <rankdir>/.lock
// that names its PID), and what runs that are gone left behind is reclaimed,
// never what a live run holds, a kept directory, or anything not zinf's.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "io/swap_file.h"
#include "support/test_util.h"

using namespace zinf;
using namespace zinf::io;
using zinf::test::error_of;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

void write_bytes(const std::string& path, std::size_t bytes) {
  std::ofstream(path, std::ios::binary) << std::string(bytes, 'x');
}

// A forked child that holds SwapDir(root, run_id, 0) with a 64 KiB file in it
// until it is killed.
struct Holder {
  pid_t pid = -1;
  Holder(const std::string& root, const std::string& run_id) {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(ready[0]);
      try {
        SwapDir dir(root, run_id, 0);
        write_bytes(dir.path() + "/params.swp", 64 * 1024);
        const char ok = 1;
        if (::write(ready[1], &ok, 1) != 1) ::_exit(1);
        for (;;) ::pause();
      } catch (...) {
        ::_exit(1);
      }
    }
    ::close(ready[1]);
    char ok = 0;
    REQUIRE(::read(ready[0], &ok, 1) == 1);
    ::close(ready[0]);
  }
  void kill9() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
  ~Holder() {
    if (pid > 0) kill9();
  }
};

// A PID no process has: a child that exited and was reaped.
long dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

}  // namespace

TEST_CASE("a swap directory held by a live process is refused naming its PID, and reclaimed once it is killed") {
  TempDir root("zinf-lock");
  Holder child(root.path(), "shared");
  const std::string held = root.path() + "/zinf-shared/rank0";
  const std::string e = error_of([&] { SwapDir again(root.path(), "shared", 0); });
  CHECK(contains(e, "swap directory '" + held + "' is in use by process " + std::to_string(child.pid)));
  CHECK(contains(e, "wait for process " + std::to_string(child.pid)));
  {
    SwapDir other(root.path(), "other", 0);  // a live holder's directory is never reclaimed
    CHECK(other.reclaimed().empty());
    CHECK(fs::exists(held + "/params.swp"));
  }
  const long pid = child.pid;
  child.kill9();  // kill -9: no destructor ran, the directory is left behind
  REQUIRE(fs::exists(held + "/params.swp"));
  SwapDir next(root.path(), "next", 0);
  REQUIRE(next.reclaimed().size() == 1);
  CHECK(next.reclaimed()[0].path == held);
  CHECK(next.reclaimed()[0].owner == std::to_string(pid));
  CHECK(next.reclaimed()[0].bytes >= 64 * 1024);
  CHECK_FALSE(fs::exists(root.path() + "/zinf-shared"));
  SwapDir reuse(root.path(), "shared", 0);  // free again
  CHECK(fs::is_directory(reuse.path()));
}

TEST_CASE("two swap directories of the same run and rank in one process: the second is refused") {
  TempDir root("zinf-lock");
  SwapDir first(root.path(), "dup", 1);
  CHECK(contains(error_of([&] { SwapDir second(root.path(), "dup", 1); }),
                 "is in use by process " + std::to_string(::getpid())));
  CHECK(fs::read_file(first.path() + "/.lock") == std::to_string(::getpid()) + "\n");
}

TEST_CASE("reclaim frees only what is provably abandoned and returns its bytes") {
  TempDir root("zinf-lock");
  const std::string r = root.path();
  const std::string dead = std::to_string(dead_pid()), live = std::to_string(::getpid());
  // Abandoned: zinf's run id naming a dead PID and no lock file (two ranks),
  // and a lock file nobody holds.
  fs::make_dirs(r + "/zinf-20260101-000000-" + dead + "/rank0");
  fs::make_dirs(r + "/zinf-20260101-000000-" + dead + "-e1/rank1");
  write_bytes(r + "/zinf-20260101-000000-" + dead + "/rank0/optimizer.swp", 3 * 4096);
  fs::make_dirs(r + "/zinf-mine/rank0");
  write_text(r + "/zinf-mine/rank0/.lock", dead + "\n");
  write_bytes(r + "/zinf-mine/rank0/params.swp", 4096);
  // Kept: a live PID without a lock, a free lock naming a live PID (a run
  // about to lock it) or naming none, a run id that names no PID, names that
  // are not zinf's, and a directory kept on purpose.
  fs::make_dirs(r + "/zinf-20260101-000000-" + live + "/rank0");
  fs::make_dirs(r + "/zinf-starting/rank0");
  write_text(r + "/zinf-starting/rank0/.lock", live + "\n");
  fs::make_dirs(r + "/zinf-20260101-000001-" + live + "/rank0");
  write_text(r + "/zinf-20260101-000001-" + live + "/rank0/.lock", "");
  fs::make_dirs(r + "/zinf-nopid/rank0");
  write_text(r + "/zinf-nopid/rank0/.lock", "");
  fs::make_dirs(r + "/zinf-custom/rank0");
  fs::make_dirs(r + "/zinf-20260102-000000-" + dead + "/data");
  fs::make_dirs(r + "/other-20260101-000000-" + dead + "/rank0");
  fs::make_dirs(r + "/zinf-20260103-000000-" + dead + "/rank0");
  write_text(r + "/zinf-20260103-000000-" + dead + "/rank0/.kept", "kept\n");
  write_text(r + "/zinf-20260104-000000-" + dead, "a file, not a directory");

  const auto freed = reclaim_swap_dirs(r);
  std::vector<std::string> paths;
  for (const auto& f : freed) paths.push_back(f.path);
  std::sort(paths.begin(), paths.end());
  REQUIRE(paths.size() == 3);
  CHECK(paths[0] == r + "/zinf-20260101-000000-" + dead + "-e1/rank1");
  CHECK(paths[1] == r + "/zinf-20260101-000000-" + dead + "/rank0");
  CHECK(paths[2] == r + "/zinf-mine/rank0");
  for (const auto& f : freed) {
    if (f.path == paths[1]) CHECK(f.bytes >= 3 * 4096);
    if (f.path == paths[2]) CHECK(f.owner == dead);
  }
  CHECK_FALSE(fs::exists(r + "/zinf-20260101-000000-" + dead));
  CHECK_FALSE(fs::exists(r + "/zinf-mine"));
  for (const std::string& kept :
       {"/zinf-20260101-000000-" + live + "/rank0", std::string("/zinf-starting/rank0"),
        "/zinf-20260101-000001-" + live + "/rank0", std::string("/zinf-nopid/rank0"), std::string("/zinf-custom/rank0"),
        "/zinf-20260102-000000-" + dead + "/data", "/other-20260101-000000-" + dead + "/rank0",
        "/zinf-20260103-000000-" + dead + "/rank0", "/zinf-20260104-000000-" + dead}) {
    CAPTURE(kept);
    CHECK(fs::exists(r + kept));
  }
  CHECK(reclaim_swap_dirs(r).empty());
  CHECK(reclaim_swap_dirs(r + "/does-not-exist").empty());
}

TEST_CASE("a swap directory kept on purpose is not reclaimed after its run") {
  TempDir root("zinf-lock");
  std::string path;
  {
    SwapDir dir(root.path(), "keep", 0, /*keep=*/true);
    path = dir.path();
    write_bytes(path + "/params.swp", 4096);
  }
  CHECK(reclaim_swap_dirs(root.path()).empty());
  CHECK(fs::exists(path + "/params.swp"));
}
