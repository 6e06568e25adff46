// cli: run safety of `zinf train` (issue 14): one run per output directory
// (a second refuses naming the holder's PID; a killed holder's lock is free
// again), kill -9 during checkpoints resumes to the uninterrupted losses bit
// for bit, a run that fails at start leaves no ds_config.json, a read-only NVMe
// path is found at start (fallback, or exit 3 with --strict-nvme), a run whose
// estimate exceeds the machine is refused before it allocates, and an
// allocation that fails ends in one clear error naming the phase and the
// planner's numbers instead of a LibTorch backtrace.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "support/run_metrics.h"
#include "support/test_util.h"

using nlohmann::json;
using zinf::test::read_text;
using zinf::test::run_program;
using zinf::test::run_zinf;
using zinf::test::TempDir;

namespace {

const std::map<std::string, std::string> kEnv = {{"OMP_NUM_THREADS", "1"}};

std::vector<std::string> quick_args(const std::string& out, int steps) {
  return {"train",   "--device", "cpu",       "--model", "tiny", "--seq-len", "64", "--batch-size", "4",
          "--steps", std::to_string(steps), "--output-dir", out, "--lr", "1e-3", "--seed", "5"};
}

std::vector<json> metrics_of(const std::string& out) { return zinf::test::metrics_lines(out); }

// Starts zinf in the background with one OpenMP thread (CI's two cores).
void start(zinf::test::Background& bg, const TempDir& dir, const std::string& tag, const std::vector<std::string>& args) {
  ::setenv("OMP_NUM_THREADS", "1", 1);
  zinf::test::start_zinf(bg, dir.file(tag + ".out"), dir.file(tag + ".err"), args);
}

// Blocks until `path` exists (or 60 s pass).
void wait_for_path(const std::string& path) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!std::filesystem::exists(path) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(std::filesystem::exists(path));
}

// Kills `bg` with SIGKILL the moment it starts writing the checkpoint of a
// step >= `min_step` (its temporary directory appears); returns that step.
int kill_during_checkpoint(zinf::test::Background& bg, const std::string& out, int min_step) {
  const std::string dir = out + "/checkpoints";
  wait_for_path(dir);
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::inotify_add_watch(fd, dir.c_str(), IN_CREATE) >= 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int step = -1;
  alignas(inotify_event) char buf[4096];
  while (step < 0 && std::chrono::steady_clock::now() < deadline) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      if (bg.wait_exit(std::chrono::milliseconds(0)))
        FAIL("zinf train ended before its checkpoint of step " << min_step << ": " << bg.err());
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    for (char* p = buf; p < buf + n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(p);
      const std::string name = ev->len > 0 ? ev->name : "";
      const std::string prefix = ".tmp-global_step";
      if (name.rfind(prefix, 0) == 0 && std::stoi(name.substr(prefix.size())) >= min_step) {
        ::kill(bg.pid, SIGKILL);
        step = std::stoi(name.substr(prefix.size()));
        break;
      }
      p += sizeof(inotify_event) + ev->len;
    }
  }
  ::close(fd);
  REQUIRE(step >= min_step);
  REQUIRE(bg.wait_exit(std::chrono::seconds(30)));
  CHECK(*bg.exit_code == 128 + SIGKILL);
  return step;
}

}  // namespace

TEST_CASE("zinf train: a second run on the same output directory refuses, naming the PID that holds it") {
  TempDir dir;
  const std::string out = dir.file("same");
  // Long enough to outlive the second run's start; stopped with SIGTERM below.
  zinf::test::Background first;
  start(first, dir, "first", quick_args(out, 100000));
  wait_for_path(out + "/ds_config.json");  // the first run has started (and holds the lock)

  const auto second = run_zinf(quick_args(out, 5), kEnv);
  CHECK(second.exit_code == 2);
  CHECK(second.err.find("output directory '" + out + "' is in use by pid " + std::to_string(first.pid)) !=
        std::string::npos);
  CHECK(second.err.find("(zinf train)") != std::string::npos);
  ::kill(first.pid, SIGTERM);
  REQUIRE(first.wait_exit(std::chrono::seconds(120)));
  REQUIRE(*first.exit_code == 130);
  // Nothing of the second run's: the first run's steps, whole, and its checkpoint.
  const auto lines = metrics_of(out);
  REQUIRE(!lines.empty());
  const json summary = json::parse(read_text(out + "/summary.json"));
  CHECK(summary["steps"] == lines.back()["step"]);
  CHECK(lines.size() == lines.back()["step"].get<std::size_t>());
  // The lock is given back at the end: the run continues with --resume.
  CHECK_FALSE(std::filesystem::exists(out + "/.zinf.lock"));
  auto more = quick_args(out, lines.back()["step"].get<int>() + 2);
  more.push_back("--resume");
  const auto resumed = run_zinf(more, kEnv);
  INFO(resumed.err);
  CHECK(resumed.exit_code == 0);
}

TEST_CASE("zinf train: kill -9 during checkpoints, twice, resumes to exactly the uninterrupted losses") {
  TempDir dir;
  auto args_for = [&](const std::string& out) {
    auto a = quick_args(out, 9);
    a.insert(a.end(), {"--save-every", "1", "--grad-accum", "2", "--keep-checkpoints", "2"});
    return a;
  };
  const auto full = run_zinf(args_for(dir.file("full")), kEnv);
  INFO(full.err);
  REQUIRE(full.exit_code == 0);

  const std::string out = dir.file("killed");
  auto resume = args_for(out);
  resume.push_back("--resume");
  zinf::test::Background first, second;
  start(first, dir, "first", args_for(out));
  int killed_at = kill_during_checkpoint(first, out, 3);
  // The kill's own checkpoint is not the latest: `latest` names a complete one, or the run restarts.
  const std::string latest = read_text(out + "/checkpoints/latest");
  CHECK(latest.find("global_step" + std::to_string(killed_at)) == std::string::npos);
  // The killed holder's lock is free again (the kernel released it), so the resume may start.
  start(second, dir, "second", resume);
  killed_at = kill_during_checkpoint(second, out, killed_at + 2);
  CHECK(killed_at >= 5);
  const auto r = run_zinf(resume, kEnv);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("resumed from") != std::string::npos);

  // metrics.jsonl keeps the steps of every attempt; the last line per step is the one that counted.
  std::map<int, double> killed_losses;
  for (const json& line : metrics_of(out)) killed_losses[line["step"].get<int>()] = line["loss"].get<double>();
  const auto reference = metrics_of(dir.file("full"));
  REQUIRE(reference.size() == 9);
  REQUIRE(killed_losses.size() == 9);
  for (const json& line : reference) {
    CAPTURE(line["step"]);
    CHECK(killed_losses[line["step"].get<int>()] == line["loss"].get<double>());
  }
  CHECK(read_text(out + "/model/model.safetensors") == read_text(dir.file("full") + "/model/model.safetensors"));
}

TEST_CASE("zinf train: a run that fails at start leaves no ds_config.json behind, and --no-save no checkpoints/") {
  TempDir dir;
  const std::string out = dir.file("out");
  auto args = quick_args(out, 2);
  args.insert(args.end(), {"--dataset-file", dir.file("missing.txt")});
  const auto r = run_zinf(args, kEnv);
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("missing.txt") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(out + "/ds_config.json"));
  CHECK_FALSE(std::filesystem::exists(out + "/.zinf.lock"));
  CHECK_FALSE(std::filesystem::exists(out + "/checkpoints"));  // made by the first save, not at start

  // --no-save: the outputs and no empty checkpoints directory.
  auto nosave = quick_args(dir.file("nosave"), 2);
  nosave.push_back("--no-save");
  const auto n = run_zinf(nosave, kEnv);
  INFO(n.err);
  REQUIRE(n.exit_code == 0);
  CHECK(std::filesystem::exists(dir.file("nosave") + "/summary.json"));
  CHECK_FALSE(std::filesystem::exists(dir.file("nosave") + "/checkpoints"));
}

TEST_CASE("zinf train: a read-only NVMe path is found at start: CPU fallback, or exit 3 with --strict-nvme") {
  TempDir dir;
  const std::string ro = dir.file("ro");
  std::filesystem::create_directories(ro);
  if (::mount("tmpfs", ro.c_str(), "tmpfs", MS_RDONLY, "size=1m") != 0) {
    MESSAGE("skipped: cannot mount a read-only tmpfs here (" << std::strerror(errno) << ")");
    return;
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount(path.c_str()); }
  } unmount{ro};

  auto args = quick_args(dir.file("fallback"), 2);
  args.insert(args.end(), {"--zero-stage", "infinity", "--nvme-offload-path", ro});
  const auto fallback = run_zinf(args, kEnv);
  INFO(fallback.err);
  CHECK(fallback.exit_code == 0);
  CHECK(fallback.err.find("NVMe offload is unusable: cannot create a file in '" + ro + "'") != std::string::npos);
  CHECK(fallback.err.find("EROFS") != std::string::npos);
  CHECK(fallback.err.find("falling back to CPU offload") != std::string::npos);
  const json cfg = json::parse(read_text(dir.file("fallback") + "/ds_config.json"));
  CHECK(cfg["zero_optimization"]["offload_param"]["device"] == "cpu");
  CHECK(cfg["zinf"]["offload"]["nvme_fallback"].get<std::string>().find("EROFS") != std::string::npos);

  args = quick_args(dir.file("strict"), 2);
  args.insert(args.end(), {"--zero-stage", "infinity", "--nvme-offload-path", ro, "--strict-nvme"});
  const auto strict = run_zinf(args, kEnv);
  CHECK(strict.exit_code == 3);
  CHECK(strict.err.find("EROFS") != std::string::npos);
  CHECK(strict.err.find("--nvme-offload-path") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.file("strict") + "/ds_config.json"));
}

TEST_CASE("zinf train: an estimate larger than the machine is refused before anything is allocated") {
  TempDir dir;
  const std::string out = dir.file("out");
  // Materialised attention over 100,000 tokens: terabytes of activations.
  auto args = quick_args(out, 2);
  args[std::size_t(std::find(args.begin(), args.end(), "--seq-len") - args.begin()) + 1] = "100000";
  const auto r = run_zinf(args, kEnv);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("none cannot fit this machine: the estimate needs CPU ") != std::string::npos);
  CHECK(r.err.find("of memory available") != std::string::npos);
  CHECK(r.err.find("hint: ") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(out));
}

TEST_CASE("zinf train: running out of memory ends in one error naming the phase and the planner's numbers") {
  TempDir dir;
  // A 3 GB address space: the tiny model starts, and its first step's
  // activations (16 x 2048 tokens, materialised attention) cannot be allocated.
  const std::string cmd = "ulimit -v 3000000; exec '" + std::string(ZINF_BINARY) +
                          "' train --device cpu --model tiny --steps 2 --seq-len 2048 --batch-size 16 --output-dir '" +
                          dir.file("out") + "'";
  const auto r = run_program("/bin/sh", {"-c", cmd}, kEnv);
  INFO(r.err);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("error: out of CPU memory in the forward/backward of step 1: ") != std::string::npos);
  CHECK(r.err.find("the planner estimated CPU ") != std::string::npos);
  CHECK(r.err.find(" in the forward/backward") != std::string::npos);
  CHECK(r.err.find("hint: ") != std::string::npos);
  // No LibTorch backtrace: two lines of error and hint after the log.
  CHECK(r.err.find("Exception raised from") == std::string::npos);
  CHECK(r.err.find("frame #") == std::string::npos);
  CHECK(r.err.find("enforce fail") == std::string::npos);
}
