// GPU: `zinf train` on CUDA decides device gradient sums ("auto") from the
// planner's estimate and the GPU's memory. The tiny model's sums fit any GPU,
// so auto turns them on; ds_config.json, summary.json and the log say so, and
// the losses equal the host-summed run's bit for bit (the same fp32 additions
// in the same order). And bf16 runs through the engine track stage none.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "support/run_metrics.h"
#include "support/test_util.h"

using nlohmann::json;
using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;

namespace {

std::vector<std::string> args_for(const std::string& out, std::vector<std::string> extra) {
  std::vector<std::string> a = {"train",         "--device",    "cuda", "--model",        "tiny", "--seq-len",
                                "32",            "--batch-size", "4",   "--steps",        "4",    "--grad-accum",
                                "3",             "--preset",     "infinity-cpu",          "--output-dir", out,
                                "--no-save",     "--seed",       "5"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

std::vector<double> losses(const std::string& out) { return zinf::test::step_losses(out); }

}  // namespace

TEST_CASE("zinf train on CUDA: device gradient sums on auto are on where they fit, with the host path's losses") {
  TempDir dir("zinf-gpu-train");
  const auto autos = run_zinf(args_for(dir.file("auto"), {}));
  REQUIRE_MESSAGE(autos.exit_code == 0, autos.err);
  CHECK(autos.err.find("device gradient sums (zinf.offload.device_grad_accumulation auto): on") != std::string::npos);
  const json cfg = json::parse(read_text(dir.file("auto") + "/ds_config.json"));
  CHECK(cfg["zinf"]["offload"]["device_grad_accumulation"] == true);
  CHECK(json::parse(read_text(dir.file("auto") + "/summary.json"))["device_grad_accumulation"] == true);

  const auto host = run_zinf(args_for(dir.file("host"), {"--no-device-grad-accumulation"}));
  REQUIRE_MESSAGE(host.exit_code == 0, host.err);
  CHECK(host.err.find("device gradient sums") == std::string::npos);  // asked for: nothing to decide
  CHECK(json::parse(read_text(dir.file("host") + "/summary.json"))["device_grad_accumulation"] == false);
  const auto want = losses(dir.file("host"));
  REQUIRE(want.size() == 4);
  CHECK(losses(dir.file("auto")) == want);
}

TEST_CASE("zinf train on CUDA in bf16: zero3 and infinity-cpu track stage none within bf16 tolerance") {
  TempDir dir("zinf-gpu-train");
  const auto run = [&](const std::string& name, std::vector<std::string> stage) {
    std::vector<std::string> a = {"train",  "--device", "cuda", "--precision", "bf16",  "--model",      "tiny",
                                  "--seq-len", "64",    "--batch-size", "8",   "--steps", "12", "--output-dir",
                                  dir.file(name), "--no-save", "--seed", "7", "--lr", "1e-3"};
    a.insert(a.end(), stage.begin(), stage.end());
    const auto r = run_zinf(a);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    return losses(dir.file(name));
  };
  const auto want = run("none", {"--zero-stage", "none"});
  REQUIRE(want.size() == 12);
  CHECK(want.back() < want.front());  // it learns
  for (const auto& [name, stage] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"zero3", {"--zero-stage", "zero3"}}, {"infinity-cpu", {"--preset", "infinity-cpu"}}}) {
    CAPTURE(name);
    const auto got = run(name, stage);
    REQUIRE(got.size() == want.size());
    // bf16 keeps 8 bits of mantissa (2^-8 = 0.4%): the paths round their
    // bf16 weights in different places, so allow 1% on the loss.
    for (std::size_t i = 0; i < got.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-2));
    }
  }
}
