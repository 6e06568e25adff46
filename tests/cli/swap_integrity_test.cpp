// cli: swap files during a real infinity run on the tiny model (CPU), at
// default settings: a page zeroed behind the run's back (what `dd
// conv=notrunc` does) stops it with an error naming the swap file and the
// offset, never exit 0 with different numbers; a seeded sweep of corrupted
// pages across every swap file the run creates is caught each time. A run
// killed with -9 leaves its swap directory behind; the next run on the same
// small NVMe path reclaims it and runs on NVMe.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/test_util.h"

using namespace std::chrono_literals;
using zinf::test::Background;
using zinf::test::read_text;
using zinf::test::run_program;
using zinf::test::run_zinf;
using zinf::test::ScopedMount;
using zinf::test::TempDir;

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::int64_t kPage = 4096;

std::vector<std::string> infinity_args(const std::string& out, const std::string& swap, int steps) {
  return {"train", "--device", "cpu", "--model", "tiny", "--seq-len", "32", "--batch-size", "4",
          "--steps", std::to_string(steps), "--output-dir", out, "--lr", "2e-3", "--seed", "5",
          "--eval-every", "1000", "--zero-stage", "infinity", "--nvme-offload-path", swap, "--no-save"};
}

std::size_t logged_steps(const std::string& out) {
  std::error_code ec;
  if (!std::filesystem::exists(out + "/metrics.jsonl", ec)) return 0;
  const std::string text = read_text(out + "/metrics.jsonl");
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// The swap files of the one run under `swap` (sorted), once it logged `steps` steps.
std::vector<std::string> swap_files_after(const std::string& swap, const std::string& out, std::size_t steps,
                                          Background& run) {
  // Slow machines only take longer; the cap is against a hung run.
  const auto until = Clock::now() + 600s;
  while (Clock::now() < until && logged_steps(out) < steps && !run.wait_exit(0ms)) std::this_thread::sleep_for(20ms);
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(swap, ec))
    if (e.path().extension() == ".swp") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// `dd if=/dev/zero of=FILE bs=4096 count=PAGES seek=PAGE conv=notrunc`; false
// when dd failed (the run stopped and removed its swap files meanwhile).
bool dd_zeros(const std::string& file, std::int64_t page, std::int64_t pages) {
  const auto r = run_program("/bin/dd", {"if=/dev/zero", "of=" + file, "bs=4096", "count=" + std::to_string(pages),
                                         "seek=" + std::to_string(page), "conv=notrunc", "status=none"});
  return r.exit_code == 0;
}

// Zeroes the pages now and again every 100 ms until the run exits (a page the
// engine rewrites before it reads it back holds no bad data; the next round
// corrupts it again). Bounded by the run's progress, not the clock (a loaded
// CI machine only makes steps slower; the 10-minute cap is against a hung
// run): a run that logs that many more steps while its pages are being zeroed
// has let corruption through (-1). Parameter and optimizer pages wait a whole
// step between their write and their read, so zeros land there at once;
// gradient pages are read back moments after they are written within a step,
// so zeros land in that window only now and then: they get more steps.
int corrupt_until_exit(Background& run, const std::string& out, const std::string& file, std::int64_t page,
                       std::int64_t pages) {
  const bool gradients = file.find("grads") != std::string::npos;
  const std::size_t give_up_at = logged_steps(out) + (gradients ? 400 : 20);
  const auto hung = Clock::now() + 600s;
  while (logged_steps(out) < give_up_at && Clock::now() < hung) {
    if (run.wait_exit(0ms)) return *run.exit_code;
    if (!dd_zeros(file, page, pages)) {
      REQUIRE_MESSAGE(run.wait_exit(60s), std::string("dd could not open the swap file but the run goes on"));
      return *run.exit_code;
    }
    if (run.wait_exit(100ms)) return *run.exit_code;
  }
  return run.wait_exit(0ms) ? *run.exit_code : -1;
}

// The run stopped with the checksum error for `file` at a page in [page, page + pages).
void check_caught(const Background& run, int code, const std::string& file, std::int64_t page, std::int64_t pages) {
  const std::string err = run.err();
  CAPTURE(err);
  CHECK(code != 0);
  CHECK(code != -1);  // it did stop
  const std::string what = "checksum mismatch reading ";
  const std::string from = " bytes from '" + file + "' at offset ";
  const auto at = err.find(from);
  REQUIRE(err.find(what) != std::string::npos);
  REQUIRE(at != std::string::npos);
  const std::int64_t offset = std::stoll(err.substr(at + from.size()));
  CHECK(offset >= page * kPage);
  CHECK(offset < (page + pages) * kPage);
  CHECK(err.find("resume from the last checkpoint") != std::string::npos);
}

}  // namespace

TEST_CASE("zinf train: a swap page zeroed by dd during an infinity run at default settings stops the run") {
  TempDir dir("zinf-cli-swapcrc");
  const std::string out = dir.file("out"), swap = dir.file("swap");
  Background run;
  zinf::test::start_zinf(run, dir.file("run.out"), dir.file("run.err"), infinity_args(out, swap, 1000));
  const auto files = swap_files_after(swap, out, 2, run);
  const auto opt = std::find_if(files.begin(), files.end(),
                                [](const std::string& f) { return f.find("/rank0/optimizer.swp") != std::string::npos; });
  REQUIRE_MESSAGE(opt != files.end(), run.err());
  const int code = corrupt_until_exit(run, out, *opt, 200, 16);  // the reproduction
  check_caught(run, code, *opt, 200, 16);
  CHECK(logged_steps(out) < 1000);
}

TEST_CASE("zinf train: corrupting any page of any swap file of an infinity run is caught (seeded sweep)") {
  TempDir dir("zinf-cli-swapcrc");
  std::mt19937_64 rng(14);
  std::vector<std::string> names;
  for (int i = 0; i < 8; ++i) {
    CAPTURE(i);
    const std::string out = dir.file("out" + std::to_string(i)), swap = dir.file("swap" + std::to_string(i));
    Background run;
    zinf::test::start_zinf(run, dir.file("run.out"), dir.file("run.err"), infinity_args(out, swap, 1000));
    const auto files = swap_files_after(swap, out, 1, run);
    REQUIRE_MESSAGE(files.size() >= 3, run.err());  // params, optimizer, gradients
    const std::string& file = files[static_cast<std::size_t>(i) % files.size()];
    names.push_back(std::filesystem::path(file).filename().string());
    const std::int64_t pages = static_cast<std::int64_t>(std::filesystem::file_size(file)) / kPage;
    const std::int64_t page = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(pages));
    CAPTURE(file);
    CAPTURE(page);
    const int code = corrupt_until_exit(run, out, file, page, 1);
    check_caught(run, code, file, page, 1);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  CHECK(names.size() >= 3);  // every kind of swap file was hit
}

TEST_CASE("zinf train: swap files a kill -9 left on a small NVMe path are reclaimed by the next run, which runs on NVMe") {
  TempDir dir("zinf-cli-reclaim");
  const std::string nvme = dir.file("nvme");
  std::filesystem::create_directories(nvme);
  // The tiny run's swap files take 15.86 MiB: 24 MiB hold one run's, not two.
  ScopedMount disk(nvme, "tmpfs", "size=24m");
  if (!disk.ok()) {
    MESSAGE("cannot mount a tmpfs here (needs CAP_SYS_ADMIN): skipped");
    return;
  }
  Background first;
  zinf::test::start_zinf(first, dir.file("first.out"), dir.file("first.err"),
                         infinity_args(dir.file("first"), nvme, 1000));
  const auto files = swap_files_after(nvme, dir.file("first"), 1, first);
  REQUIRE_MESSAGE(files.size() >= 3, first.err());
  const std::string leftover = std::filesystem::path(files[0]).parent_path().string();  // <nvme>/zinf-<id>/rank0
  REQUIRE(::kill(first.pid, SIGKILL) == 0);
  REQUIRE(first.wait_exit(10s));
  CHECK(*first.exit_code == 128 + SIGKILL);
  REQUIRE(std::filesystem::exists(leftover + "/optimizer.swp"));

  // --strict-nvme: with the leftover still there the path is too small and the run would exit 3.
  auto args = infinity_args(dir.file("second"), nvme, 2);
  args.push_back("--strict-nvme");
  const auto second = run_zinf(args);
  REQUIRE_MESSAGE(second.exit_code == 0, second.err);
  const std::string log = second.out + second.err;
  CHECK(log.find("reclaimed swap directory '" + leftover + "' left by process " + std::to_string(first.pid)) !=
        std::string::npos);
  CHECK(log.find(" freed") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(std::filesystem::path(leftover).parent_path()));
  const auto cfg = nlohmann::json::parse(read_text(dir.file("second/ds_config.json")));
  CHECK(cfg["zero_optimization"]["offload_optimizer"]["device"] == "nvme");
  const std::string metrics = read_text(dir.file("second/metrics.jsonl"));
  const auto last = nlohmann::json::parse(metrics.substr(metrics.rfind('\n', metrics.size() - 2) + 1));
  CHECK(last["nvme_read_bytes"].get<long long>() > 0);
  CHECK(std::filesystem::is_empty(nvme));  // and the second run cleaned up after itself
}
