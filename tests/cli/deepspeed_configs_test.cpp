// cli: DeepSpeed configuration files as real projects write them run through
// `zinf config` and `zinf train`: unknown top-level keys and aio inside
// zero_optimization warn and go on, inert keys warn once and --explain marks
// them, OneCycle's LR curve reaches metrics.jsonl, and a scheduler parameter
// of another type exits 2 naming its type.
#include <doctest/doctest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/run_metrics.h"
#include "support/test_util.h"

using nlohmann::json;
using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;

namespace {

const std::string kData = std::string(ZINF_SOURCE_DIR) + "/tests/data";

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::size_t occurrences(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("zinf config runs DeepSpeed files with unknown top-level keys and nested aio, warning once each") {
  const std::string hf = kData + "/ds_hf_zero3_comms.json";
  auto r = run_zinf({"config", "--config", hf});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(occurrences(r.err, "unknown top-level key 'comms_config' (in file " + hf + ") is ignored") == 1);
  const json cfg = json::parse(r.out);
  CHECK_FALSE(cfg.contains("comms_config"));
  CHECK(cfg["zinf"]["train"]["log_every"] == 25);  // steps_per_print

  const std::string nvme = kData + "/ds_nvme_aio_in_zero.json";
  r = run_zinf({"config", "--config", nvme});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(occurrences(r.err, "zero_optimization.aio (in file " + nvme + ") belongs at the top level") == 1);
  const json nv = json::parse(r.out);
  CHECK(nv["aio"]["block_size"] == 262144);
  CHECK(nv["aio"]["queue_depth"] == 16);
  CHECK_FALSE(nv["zero_optimization"].contains("aio"));
}

TEST_CASE("zinf config warns once per inert key a Megatron-style file sets (not tensorboard, which it writes), and --explain marks them") {
  const std::string file = kData + "/ds_megatron_style.json";
  auto r = run_zinf({"config", "--config", file});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(occurrences(r.err, "unknown top-level key 'tensor_model_parallel_size'") == 1);
  CHECK_FALSE(has(r.err, "tensorboard"));  // honoured: zinf writes the events
  CHECK(occurrences(r.err, "activation_checkpointing.cpu_checkpointing = true") == 1);
  CHECK(occurrences(r.err, "zero_optimization.overlap_comm = false") == 1);
  CHECK_FALSE(has(r.err, "wandb"));  // "enabled": false changes nothing

  r = run_zinf({"config", "--config", file, "--explain"});
  REQUIRE(r.exit_code == 0);
  CHECK(has(r.out, "zero_optimization.overlap_comm = false    # file " + file +
                       "  (accepted, no effect in zinf: zinf always overlaps communication with compute on its own "
                       "communication worker)"));
  CHECK(has(r.out, "zinf.train.log_every = 1    # file " + file + ", as steps_per_print\n"));
}

TEST_CASE("zinf config: a scheduler parameter of another type exits 2 naming the type it belongs to") {
  TempDir dir;
  zinf::test::write_text(dir.file("mix.json"),
                         R"({"scheduler": {"type": "WarmupDecayLR", "params": {"cycle_max_lr": 1e-3}}})");
  const auto r = run_zinf({"config", "--config", dir.file("mix.json")});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "scheduler.params.cycle_max_lr (set by file " + dir.file("mix.json") +
                       ") is a parameter of OneCycle, not of scheduler.type = 'WarmupDecayLR'"));
}

TEST_CASE("zinf train follows DeepSpeed's OneCycle LR curve (config from a DeepSpeed file)") {
  TempDir dir;
  const std::string out = dir.file("run");
  const auto r = run_zinf({"train", "--config", kData + "/ds_onecycle.json", "--device", "cpu", "--model", "tiny",
                           "--seq-len", "32", "--steps", "12", "--output-dir", out, "--no-save"},
                          {{"OMP_NUM_THREADS", "1"}});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const std::vector<json> lines = zinf::test::metrics_lines(out);
  REQUIRE(lines.size() == 12);
  // metrics line i is optimizer step i (0-based): min 1e-4, max 1e-3, 4 steps up, 6 down, then
  // 1e-4 / (1 + 0.5 x (i - 10) / 2)
  const double expected[] = {1e-4,   3.25e-4, 5.5e-4, 7.75e-4, 1e-3, 8.5e-4,
                             7e-4,   5.5e-4,  4e-4,   2.5e-4,  1e-4, 1e-4 / 1.25};
  for (std::size_t i = 0; i < lines.size(); ++i) CHECK(lines[i]["lr"].get<double>() == doctest::Approx(expected[i]));
}
