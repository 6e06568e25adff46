// Tests: `zinf launch` end to end on the built binary, with /bin/sh ranks:
// prefixed output, rank failures and kills tearing everything down, signal
// forwarding, no rank outliving the launcher, port and flag errors, and a
// two-node hostfile run through a local stand-in for ssh (ZINF_SSH).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "support/test_util.h"

extern char** environ;

using namespace std::chrono_literals;
using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using zinf::test::write_text;

using zinf::test::free_port;

namespace {

using Clock = std::chrono::steady_clock;

using zinf::test::Background;

void start_zinf(Background& bg, const TempDir& dir, const std::vector<std::string>& args) {
  zinf::test::start_zinf(bg, dir.file("launcher.out"), dir.file("launcher.err"), args);
}

bool wait_for_file(const std::string& path, std::chrono::milliseconds limit) {
  const auto until = Clock::now() + limit;
  struct stat st {};
  for (;;) {
    if (::stat(path.c_str(), &st) == 0 && st.st_size > 0) return true;
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(20ms);
  }
}

pid_t read_pid(const std::string& path) { return static_cast<pid_t>(std::stol(read_text(path))); }

// Alive and not a zombie waiting for a reaper.
bool alive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close == std::string::npos || line.size() < close + 2 || line[close + 2] != 'Z';
}

bool gone_within(pid_t pid, std::chrono::milliseconds limit) {
  const auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    if (!alive(pid)) return true;
    std::this_thread::sleep_for(20ms);
  }
  return !alive(pid);
}

// A rank script that records its pid (atomically) and then sleeps as that pid.
std::string record_pid_then_sleep(const TempDir& dir) {
  return "echo $$ > " + dir.path() + "/pid$RANK.tmp && mv " + dir.path() + "/pid$RANK.tmp " + dir.path() +
         "/pid$RANK; exec sleep 60";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("launch --nproc 2 prints each rank's lines with its prefix and exits 0") {
  const auto r = run_zinf({"launch", "--nproc", "2", "--master-port", std::to_string(free_port()), "--", "/bin/sh",
                           "-c", "echo hello $RANK $WORLD_SIZE $LOCAL_RANK; echo oops $RANK >&2; printf tail"});
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "[rank 0] hello 0 2 0\n"));
  CHECK(contains(r.out, "[rank 1] hello 1 2 1\n"));
  CHECK(contains(r.out, "[rank 0] tail\n"));  // a last line without newline is still a line
  CHECK(contains(r.err, "[rank 0] oops 0\n"));
  CHECK(contains(r.err, "[rank 1] oops 1\n"));
  CHECK_FALSE(contains(r.out, "oops"));
}

TEST_CASE("launch never interleaves two ranks within a line") {
  // Each rank writes 300 lines of 2000 characters as fast as it can.
  const std::string script =
      "line=$(printf '%2000s' '' | tr ' ' $RANK); i=0; while [ $i -lt 300 ]; do echo \"$line\"; i=$((i+1)); done";
  const auto r = run_zinf({"launch", "--nproc", "2", "--master-port", std::to_string(free_port()), "--", "/bin/sh",
                           "-c", script});
  REQUIRE(r.exit_code == 0);
  std::istringstream lines(r.out);
  std::string line;
  int count[2] = {0, 0};
  while (std::getline(lines, line)) {
    const bool rank0 = line == "[rank 0] " + std::string(2000, '0');
    const bool rank1 = line == "[rank 1] " + std::string(2000, '1');
    CHECK((rank0 || rank1));
    ++count[rank0 ? 0 : 1];
  }
  CHECK(count[0] == 300);
  CHECK(count[1] == 300);
}

TEST_CASE("a rank exiting 3 stops the others and the launcher names it") {
  TempDir dir("zinf-launch");
  const std::string script = "if [ $RANK = 1 ]; then while [ ! -s " + dir.path() +
                             "/pid0 ]; do sleep 0.05; done; exit 3; fi; " + record_pid_then_sleep(dir);
  const auto t0 = Clock::now();
  const auto r = run_zinf({"launch", "--nproc", "2", "--master-port", std::to_string(free_port()), "--", "/bin/sh",
                           "-c", script});
  const auto elapsed = Clock::now() - t0;
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "error: rank 1 exited with code 3; the other ranks were stopped"));
  CHECK(elapsed < 15s);  // not the 60 s rank 0 would have slept
  REQUIRE(wait_for_file(dir.file("pid0"), 0ms));
  CHECK_FALSE(alive(read_pid(dir.file("pid0"))));
}

TEST_CASE("kill -9 of one rank brings the launcher down non-zero with no rank left running") {
  TempDir dir("zinf-launch");
  Background bg;
  start_zinf(bg, dir, {"launch", "--nproc", "2", "--master-port", std::to_string(free_port()), "--", "/bin/sh", "-c",
                       record_pid_then_sleep(dir)});
  REQUIRE(wait_for_file(dir.file("pid0"), 20s));
  REQUIRE(wait_for_file(dir.file("pid1"), 20s));
  const pid_t rank0 = read_pid(dir.file("pid0")), rank1 = read_pid(dir.file("pid1"));
  REQUIRE(::kill(rank1, SIGKILL) == 0);
  REQUIRE(bg.wait_exit(30s));
  CHECK(*bg.exit_code == 1);
  CHECK(contains(bg.err(), "error: rank 1 was killed by SIGKILL (signal 9)"));
  CHECK_FALSE(alive(rank0));
  CHECK_FALSE(alive(rank1));
}

TEST_CASE("SIGTERM to the launcher is forwarded to every rank, which all exit") {
  TempDir dir("zinf-launch");
  // Each rank traps SIGTERM, notes it got it, and exits cleanly (like a run saving a checkpoint).
  const std::string script = "trap 'echo term > " + dir.path() + "/term$RANK; exit 0' TERM; echo $$ > " + dir.path() +
                             "/pid$RANK.tmp && mv " + dir.path() + "/pid$RANK.tmp " + dir.path() +
                             "/pid$RANK; while true; do sleep 0.1; done";
  Background bg;
  start_zinf(bg, dir, {"launch", "--nproc", "2", "--master-port", std::to_string(free_port()), "--", "/bin/sh", "-c",
                       script});
  REQUIRE(wait_for_file(dir.file("pid0"), 20s));
  REQUIRE(wait_for_file(dir.file("pid1"), 20s));
  const pid_t rank0 = read_pid(dir.file("pid0")), rank1 = read_pid(dir.file("pid1"));
  REQUIRE(::kill(bg.pid, SIGTERM) == 0);
  REQUIRE(bg.wait_exit(30s));
  CHECK(*bg.exit_code == 130);
  CHECK(contains(bg.err(), "got SIGTERM; forwarding it to every rank"));
  CHECK(contains(bg.err(), "error: stopped by SIGTERM"));
  CHECK(read_text(dir.file("term0")) == "term\n");
  CHECK(read_text(dir.file("term1")) == "term\n");
  CHECK_FALSE(alive(rank0));
  CHECK_FALSE(alive(rank1));
}

TEST_CASE("a rank that ignores SIGTERM is killed after the grace period") {
  TempDir dir("zinf-launch");
  const std::string script = "if [ $RANK = 1 ]; then while [ ! -s " + dir.path() +
                             "/pid0 ]; do sleep 0.05; done; exit 7; fi; trap '' TERM; echo $$ > " + dir.path() +
                             "/pid0.tmp && mv " + dir.path() + "/pid0.tmp " + dir.path() +
                             "/pid0; while true; do sleep 0.1; done";
  const auto t0 = Clock::now();
  const auto r = run_zinf({"launch", "--nproc", "2", "--master-port", std::to_string(free_port()), "--", "/bin/sh",
                           "-c", script});
  const auto elapsed = Clock::now() - t0;
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "rank 0 still running after the grace period; sending SIGKILL"));
  CHECK(contains(r.err, "error: rank 1 exited with code 7"));
  CHECK(elapsed >= 5s);
  CHECK(elapsed < 20s);
  CHECK_FALSE(alive(read_pid(dir.file("pid0"))));
}

TEST_CASE("kill -9 of the launcher takes its ranks down too") {
  TempDir dir("zinf-launch");
  Background bg;
  start_zinf(bg, dir, {"launch", "--nproc", "2", "--master-port", std::to_string(free_port()), "--", "/bin/sh", "-c",
                       record_pid_then_sleep(dir)});
  REQUIRE(wait_for_file(dir.file("pid0"), 20s));
  REQUIRE(wait_for_file(dir.file("pid1"), 20s));
  const pid_t rank0 = read_pid(dir.file("pid0")), rank1 = read_pid(dir.file("pid1"));
  REQUIRE(::kill(bg.pid, SIGKILL) == 0);
  REQUIRE(bg.wait_exit(10s));
  CHECK(gone_within(rank0, 10s));
  CHECK(gone_within(rank1, 10s));
}

TEST_CASE("a master port in use is refused before any rank starts, naming the holder") {
  TempDir dir("zinf-launch");
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  const auto r = run_zinf({"launch", "--nproc", "1", "--master-port", std::to_string(port), "--", "/bin/sh", "-c",
                           "touch " + dir.file("started")});
  ::close(fd);
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "error: master port " + std::to_string(port) + " is in use by pid " + std::to_string(::getpid())));
  CHECK(contains(r.err, "hint: port in use, pick another with --master-port"));
  CHECK_FALSE(wait_for_file(dir.file("started"), 0ms));
}

TEST_CASE("bad launch flags are usage errors that say what is allowed") {
  const std::string port = std::to_string(free_port());
  auto r = run_zinf({"launch", "--gpus", "0", "--master-port", port, "--", "true"}, {{"CUDA_VISIBLE_DEVICES", ""}});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "no GPUs visible"));
  CHECK(contains(r.err, "use --nproc N for CPU processes"));

  r = run_zinf({"launch", "--nproc", "0", "--", "true"});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "--nproc 0 must be at least 1"));

  r = run_zinf({"launch", "--nproc", "2", "--gpus", "0,1", "--", "true"});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "--gpus and --nproc were both given"));

  r = run_zinf({"launch", "--nproc", "2"});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "nothing to run: put the command after `--`"));

  r = run_zinf({"launch", "--nproc", "1", "--master-port", "70000", "--", "true"});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "--master-port 70000 is not a TCP port"));

  r = run_zinf({"launch", "--nproc", "1", "--", "no-such-program-for-zinf"});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "cannot find 'no-such-program-for-zinf' in PATH"));

  TempDir dir("zinf-launch");
  write_text(dir.file("hosts"), "a slots=1\nb slots=x\n");
  r = run_zinf({"launch", "--nproc", "1", "--hostfile", dir.file("hosts"), "--", "true"});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, dir.file("hosts") + ":2: slots='x'"));

  write_text(dir.file("remote-first"), "192.0.2.1 slots=1\nlocalhost slots=1\n");  // TEST-NET-1: never local
  // ZINF_SSH: the check must not depend on an ssh client being installed
  r = run_zinf({"launch", "--nproc", "1", "--hostfile", dir.file("remote-first"), "--", "true"},
               {{"ZINF_SSH", "/bin/sh"}});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "this machine is not 192.0.2.1, the first host of the hostfile"));

  r = run_zinf({"launch", "--nproc", "1", "--nnodes", "2", "--node-rank", "1", "--master-addr",
                "no-such-host.invalid", "--", "true"});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "--master-addr 'no-such-host.invalid' does not resolve"));
}

// ---------------------------------------------------------------- hostfile over a stand-in ssh

namespace {
// "ssh host command": run the command locally, as ssh would on the host. Like
// ssh, it stays the parent: the node's launcher is its child, not itself.
void write_fake_ssh(const TempDir& dir) {
  write_text(dir.file("fake-ssh"), "#!/bin/sh\necho \"$1\" >> " + dir.path() + "/ssh-hosts\n/bin/sh -c \"$2\"\n");
  ::chmod(dir.file("fake-ssh").c_str(), 0755);
  write_text(dir.file("hosts"), "# two nodes, both this machine\nlocalhost slots=2\n127.0.0.1 slots=2\n");
}
}  // namespace

TEST_CASE("a two-node hostfile starts node 1's launcher over ZINF_SSH and numbers ranks across nodes") {
  TempDir dir("zinf-launch");
  write_fake_ssh(dir);
  const auto r = run_zinf({"launch", "--hostfile", dir.file("hosts"), "--nproc", "1", "--master-port",
                           std::to_string(free_port()), "--", "/bin/sh", "-c",
                           "echo hello $RANK of $WORLD_SIZE local $LOCAL_RANK node $GROUP_RANK via $MASTER_ADDR"},
                          {{"ZINF_SSH", dir.file("fake-ssh")}});
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "[rank 0] hello 0 of 2 local 0 node 0 via localhost\n"));
  CHECK(contains(r.out, "[rank 1] hello 1 of 2 local 0 node 1 via localhost\n"));
  CHECK(read_text(dir.file("ssh-hosts")) == "127.0.0.1\n");
}

TEST_CASE("a rank failing on the ssh-started node stops the whole job") {
  TempDir dir("zinf-launch");
  write_fake_ssh(dir);
  const std::string script = "if [ $RANK = 1 ]; then while [ ! -s " + dir.path() +
                             "/pid0 ]; do sleep 0.05; done; exit 4; fi; " + record_pid_then_sleep(dir);
  const auto t0 = Clock::now();
  const auto r = run_zinf({"launch", "--hostfile", dir.file("hosts"), "--nproc", "1", "--master-port",
                           std::to_string(free_port()), "--", "/bin/sh", "-c", script},
                          {{"ZINF_SSH", dir.file("fake-ssh")}});
  CHECK(Clock::now() - t0 < 20s);
  CHECK(r.exit_code == 1);
  INFO(r.err);
  CHECK(contains(r.err, "error: rank 1 (node 1) exited with code 4"));
  CHECK(contains(r.err, "error: node 1 (127.0.0.1) exited with code 1"));
  CHECK_FALSE(alive(read_pid(dir.file("pid0"))));
}

TEST_CASE("kill -9 of the head launcher also stops the ranks of the ssh-started node (stdin lifeline)") {
  TempDir dir("zinf-launch");
  write_fake_ssh(dir);
  ::setenv("ZINF_SSH", dir.file("fake-ssh").c_str(), 1);
  Background bg;
  start_zinf(bg, dir, {"launch", "--hostfile", dir.file("hosts"), "--nproc", "1", "--master-port",
                       std::to_string(free_port()), "--", "/bin/sh", "-c", record_pid_then_sleep(dir)});
  ::unsetenv("ZINF_SSH");
  REQUIRE(wait_for_file(dir.file("pid0"), 20s));
  REQUIRE(wait_for_file(dir.file("pid1"), 20s));
  const pid_t rank0 = read_pid(dir.file("pid0")), rank1 = read_pid(dir.file("pid1"));
  REQUIRE(::kill(bg.pid, SIGKILL) == 0);
  REQUIRE(bg.wait_exit(10s));
  CHECK(gone_within(rank0, 10s));
  CHECK(gone_within(rank1, 10s));
}
