// cli: the planner against measured runs (issue 6). gpt2-small, batch 2,
// seq 128, on the CPU, one step each of stage none and of infinity with
// NVMe: `zinf estimate`'s CPU memory for the selected option is within 15%
// of the run's peak RSS (summary.json), and its NVMe bytes within 10% of
// the space the swap files take on disk, measured independently of the
// engine (st_blocks of every file the run kept, --keep-swap-files through
// the config) and also of the engine's own reservations (nvme_peak_bytes).
// Slow: a gpt2-small step takes a minute on CI's two cores; ctest runs these
// cases as their own entry (cli.plan_accuracy).
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/test_util.h"

using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using Json = nlohmann::json;

namespace {

// Bytes the files under `dir` occupy on disk (allocated blocks, not sizes).
std::int64_t allocated_bytes(const std::string& dir) {
  std::int64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    struct stat st {};
    if (e.is_regular_file() && ::stat(e.path().c_str(), &st) == 0) total += std::int64_t(st.st_blocks) * 512;
  }
  return total;
}

std::vector<std::string> with(std::vector<std::string> base, const std::vector<std::string>& more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

double mib(std::int64_t b) { return double(b) / double(1 << 20); }

struct Measured {
  Json plan;     // zinf estimate --json's "selected" option
  Json summary;  // the run's summary.json
};

// The estimate for `run`, then one training step of it.
Measured plan_and_run(const TempDir& dir, const std::string& name, const std::vector<std::string>& run) {
  const auto e = run_zinf(with({"estimate", "--json", "--cpu-memory-gb", "64"}, run));
  INFO(e.err);
  REQUIRE(e.exit_code == 0);
  Measured m;
  m.plan = Json::parse(e.out).at("selected");
  const auto t = run_zinf(with({"train", "--steps", "1", "--output-dir", dir.file(name)}, run));
  INFO(t.err);
  REQUIRE(t.exit_code == 0);
  m.summary = Json::parse(read_text(dir.file(name + "/summary.json")));
  return m;
}

}  // namespace

TEST_CASE("planner accuracy: gpt2-small on CPU, stage none and infinity on NVMe, against peak RSS and swap files") {
  TempDir dir("zinf-plan-acc");
  // Keep the swap files for the measurement; no validation split: its
  // forwards take minutes here and hold less than a training step.
  zinf::test::write_text(dir.file("measure.yaml"),
                         "zinf:\n  offload:\n    keep_swap_files: true\n  data:\n    val_fraction: 0\n");
  const std::vector<std::string> base = {"--device", "cpu",         "--model",  "gpt2-small",
                                         "--batch-size", "2",       "--seq-len", "128",
                                         "--config", dir.file("measure.yaml")};

  const Measured none = plan_and_run(dir, "none", with(base, {"--zero-stage", "none"}));
  const std::int64_t none_plan = none.plan.at("cpu_bytes"), none_rss = none.summary.at("peak_rss_bytes");
  const double none_ratio = double(none_plan) / double(none_rss);
  MESSAGE("stage none: CPU predicted " << mib(none_plan) << " MiB, measured peak RSS " << mib(none_rss)
                                       << " MiB, ratio " << none_ratio);
  CHECK(none.plan.at("name") == "none");
  CHECK(none_ratio >= 0.85);
  CHECK(none_ratio <= 1.15);

  const std::string nvme = dir.file("nvme");
  const Measured inf = plan_and_run(dir, "infinity", with(base, {"--zero-stage", "infinity", "--nvme-offload-path", nvme}));
  CHECK(inf.plan.at("name") == "infinity-nvme");
  CHECK(inf.summary.at("offload_param") == "nvme");  // no fallback to CPU offload
  const std::int64_t inf_plan = inf.plan.at("cpu_bytes"), inf_rss = inf.summary.at("peak_rss_bytes");
  const double inf_ratio = double(inf_plan) / double(inf_rss);
  MESSAGE("infinity: CPU predicted " << mib(inf_plan) << " MiB, measured peak RSS " << mib(inf_rss) << " MiB, ratio "
                                     << inf_ratio);
  CHECK(inf_ratio >= 0.85);
  CHECK(inf_ratio <= 1.15);

  const std::int64_t nvme_plan = inf.plan.at("nvme_bytes"), on_disk = allocated_bytes(nvme),
                     reserved = inf.summary.at("nvme_peak_bytes");
  MESSAGE("infinity: NVMe predicted " << mib(nvme_plan) << " MiB, swap files on disk " << mib(on_disk)
                                      << " MiB, engine's reservations " << mib(reserved) << " MiB");
  REQUIRE(on_disk > 0);
  CHECK(double(nvme_plan) / double(on_disk) >= 0.9);
  CHECK(double(nvme_plan) / double(on_disk) <= 1.1);
  CHECK(double(nvme_plan) / double(reserved) >= 0.9);
  CHECK(double(nvme_plan) / double(reserved) <= 1.1);
}
