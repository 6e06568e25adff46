// CLI: `zinf train` and the planner: the estimate is printed at start, the
// measured peaks next to it at the end, and --optimize picks the stage.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "support/test_util.h"

using zinf::test::run_zinf;
using zinf::test::TempDir;

namespace {
const std::map<std::string, std::string> kEnv = {{"OMP_NUM_THREADS", "1"}};
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("zinf train prints the planner's estimate and the measured peaks beside it") {
  TempDir dir("zinf-plan");
  const auto r = run_zinf({"train", "--device", "cpu", "--steps", "2", "--seq-len", "32", "--batch-size", "2", "--output-dir",
                           dir.file("out")},
                          kEnv);
  REQUIRE(r.exit_code == 0);
  CHECK(has(r.err, "estimate for none (details: zinf estimate): CPU "));
  CHECK(has(r.err, "measured peaks: CPU RSS "));
  CHECK(has(r.err, "(estimated "));
}

TEST_CASE("--optimize picks the fastest option that fits and ds_config.json records it") {
  TempDir dir("zinf-plan");
  const auto r = run_zinf({"train", "--device", "cpu", "--optimize", "--zero-stage", "zero3", "--steps", "2", "--seq-len", "32",
                           "--batch-size", "2", "--output-dir", dir.file("out")},
                          kEnv);
  REQUIRE(r.exit_code == 0);
  // the tiny model fits in memory without ZeRO: the planner chooses stage none over the asked zero3
  CHECK(has(r.err, "--optimize chose none"));
  const auto cfg = nlohmann::json::parse(zinf::test::read_text(dir.file("out/ds_config.json")));
  CHECK(cfg["zinf"]["optimize"] == true);
  CHECK(cfg["zero_optimization"]["stage"] == 0);
  CHECK(cfg["zero_optimization"]["offload_param"]["device"] == "none");
}
