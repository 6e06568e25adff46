// cli: tools/bench_planner.sh (the GPU host's planner check) runs end to end
// on the CPU with the tiny model: every configuration trains, and the table
// has a predicted / measured row per tier with the thresholds.
#include <doctest/doctest.h>

#include <filesystem>
#include <sstream>

#include "support/test_util.h"

using zinf::test::run_program;
using zinf::test::TempDir;

namespace {
int rows_with(const std::string& table, const std::string& part) {
  std::istringstream in(table);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.rfind("| ", 0) == 0 && line.find(part) != std::string::npos;
  return n;
}
}  // namespace

TEST_CASE("bench_planner.sh runs none, infinity-cpu and infinity-nvme and prints predicted vs measured") {
  TempDir dir("zinf-bench-plan");
  const auto r = run_program(std::string(ZINF_SOURCE_DIR) + "/tools/bench_planner.sh", {ZINF_BINARY, dir.file("out")},
                             {{"DEVICE", "cpu"},
                              {"PRECISION", "fp32"},
                              {"STEPS", "2"},
                              {"MODEL_ARGS", "--model tiny --batch-size 2 --seq-len 32"},
                              {"OMP_NUM_THREADS", "1"}});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  INFO(r.out);
  CHECK(r.out.find("| configuration | tier | predicted | measured |") != std::string::npos);
  CHECK(rows_with(r.out, "CPU (peak RSS)") == 3);
  CHECK(rows_with(r.out, "| none | CPU (peak RSS)") == 1);
  CHECK(rows_with(r.out, "| infinity-cpu | CPU (peak RSS)") == 1);
  CHECK(rows_with(r.out, "| infinity-nvme | NVMe (swap files on disk)") == 1);
  CHECK(rows_with(r.out, "| infinity-nvme | NVMe (engine's reservations") == 1);
  CHECK(rows_with(r.out, "within 15%") == 3);
  CHECK(rows_with(r.out, "GPU (") == 0);  // a CPU run has no GPU row
  CHECK(r.out.find("| - |") == std::string::npos);  // every row was measured
  // The swap files were counted and then removed.
  CHECK_FALSE(std::filesystem::exists(dir.file("out/nvme/infinity-nvme")));
}
