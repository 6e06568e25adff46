// cli: `zinf train` through the ZeRO engine on the tiny model (CPU): zero3,
// infinity with CPU offload and infinity with NVMe offload give stage none's
// losses; metrics.jsonl counts the bytes each tier moved; a killed-and-resumed
// NVMe run reproduces the uninterrupted losses; an unusable NVMe path falls
// back to CPU offload with a warning (and ds_config.json says so) or, with
// --strict-nvme, stops with exit code 3; bf16 runs track stage none.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/run_metrics.h"
#include "support/test_util.h"

using nlohmann::json;
using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

std::vector<std::string> args_for(const std::string& out, int steps, const std::vector<std::string>& extra) {
  std::vector<std::string> a = {"train", "--device", "cpu", "--model", "tiny", "--seq-len", "32", "--batch-size", "4",
                                "--steps", std::to_string(steps), "--output-dir", out, "--lr", "2e-3", "--seed", "5",
                                "--eval-every", "1000"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

std::vector<json> metrics(const std::string& out) { return zinf::test::metrics_lines(out); }

std::vector<double> losses(const std::string& out) { return zinf::test::step_losses(out); }

}  // namespace

TEST_CASE("zinf train: zero3, infinity-cpu and infinity-nvme give stage none's losses for 30 steps") {
  TempDir dir("zinf-cli-offload");
  const auto none = run_zinf(args_for(dir.file("none"), 30, {"--zero-stage", "none"}));
  REQUIRE_MESSAGE(none.exit_code == 0, none.err);
  const auto want = losses(dir.file("none"));
  REQUIRE(want.size() == 30);
  struct Case {
    const char* name;
    std::vector<std::string> flags;
  };
  const std::string swap = dir.file("swap");
  for (const Case& c : {Case{"zero3", {"--zero-stage", "zero3"}},
                        Case{"infinity-cpu", {"--preset", "infinity-cpu"}},
                        Case{"infinity-nvme", {"--zero-stage", "infinity", "--nvme-offload-path", swap}}}) {
    CAPTURE(c.name);
    const std::string out = dir.file(c.name);
    const auto r = run_zinf(args_for(out, 30, c.flags));
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const auto got = losses(out);
    REQUIRE(got.size() == 30);
    for (std::size_t i = 0; i < 30; ++i) {
      CAPTURE(i);
      CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-4));
    }
    const json last = metrics(out).back();
    const json summary = json::parse(read_text(out + "/summary.json"));
    if (std::string(c.name) == "infinity-nvme") {
      CHECK(last["nvme_read_bytes"].get<long long>() > 0);
      CHECK(last["nvme_write_bytes"].get<long long>() > 0);
      // cumulative totals grow by exactly each step's traffic
      long long read_total = 0, write_total = 0;
      for (const json& m : metrics(out)) {
        read_total += m["nvme_read_bytes_step"].get<long long>();
        write_total += m["nvme_write_bytes_step"].get<long long>();
        CHECK(m["nvme_read_bytes"].get<long long>() == read_total);
        CHECK(m["nvme_write_bytes"].get<long long>() == write_total);
      }
      CHECK(summary["offload_param"] == "nvme");
      CHECK(summary["offload_optimizer"] == "nvme");
    } else {
      CHECK(last["nvme_read_bytes"] == 0);
    }
    if (std::string(c.name) == "infinity-cpu") {
      CHECK(last["h2d_bytes"].get<long long>() > 0);  // every block uploaded for forward and backward
      CHECK(last["d2h_bytes"].get<long long>() > 0);  // gradients to the CPU optimizer
      CHECK(summary["offload_param"] == "cpu");
    }
  }
}

TEST_CASE("zinf train: a step's bytes and timeline leave out validation and checkpoint traffic") {
  TempDir dir("zinf-cli-offload");
  const std::vector<std::string> nvme = {"--zero-stage", "infinity", "--nvme-offload-path", dir.file("swap")};
  REQUIRE(run_zinf(args_for(dir.file("plain"), 6, nvme)).exit_code == 0);
  auto busy = args_for(dir.file("busy"), 6, nvme);
  *(std::find(busy.begin(), busy.end(), "--eval-every") + 1) = "2";
  busy.insert(busy.end(), {"--save-every", "3"});
  const auto r = run_zinf(busy);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto plain = metrics(dir.file("plain")), with = metrics(dir.file("busy"));
  REQUIRE(plain.size() == 6);
  REQUIRE(with.size() == 6);
  // The optimizer's NVMe work overlaps the next step, so a step that is
  // followed by validation or a checkpoint finishes its own first: per step
  // the bytes differ, but over the run every training byte is counted once.
  const std::vector<const char*> keys = {"nvme_read_bytes_step", "nvme_write_bytes_step", "h2d_bytes", "d2h_bytes"};
  std::map<std::string, long long> plain_sum, with_sum;
  for (std::size_t i = 0; i < 6; ++i) {
    CAPTURE(i);
    CHECK(with[i].contains("val_loss") == (i % 2 == 1 || i == 5));
    for (const char* key : keys) {
      plain_sum[key] += plain[i][key].get<long long>();
      with_sum[key] += with[i][key].get<long long>();
    }
  }
  for (const char* key : keys) {
    CAPTURE(key);
    CHECK(with_sum[key] > 0);
    CHECK(with_sum[key] == plain_sum[key]);
  }
  const long long read_steps = with_sum["nvme_read_bytes_step"];
  CHECK(plain[5]["nvme_read_bytes"].get<long long>() == read_steps);
  // The run's totals still count what validation and the checkpoints read.
  CHECK(with[5]["nvme_read_bytes"].get<long long>() > read_steps);
  const json summary = json::parse(read_text(dir.file("busy") + "/summary.json"));
  CHECK(summary["nvme_read_bytes"].get<long long>() > with[5]["nvme_read_bytes"].get<long long>());
}

TEST_CASE("zinf train: with the delayed parameter update, validation does not change the losses") {
  TempDir dir("zinf-cli-offload");
  const std::vector<std::string> dpu = {"--preset", "infinity-cpu", "--delayed-param-update", "--no-save"};
  REQUIRE(run_zinf(args_for(dir.file("quiet"), 6, dpu)).exit_code == 0);
  auto busy = args_for(dir.file("busy"), 6, dpu);
  *(std::find(busy.begin(), busy.end(), "--eval-every") + 1) = "2";
  const auto r = run_zinf(busy);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  REQUIRE(metrics(dir.file("busy"))[1].contains("val_loss"));
  // Validation waits for the optimizer in flight but leaves its update
  // pending, so every step computes with the weights it would have had.
  CHECK(losses(dir.file("busy")) == losses(dir.file("quiet")));
  // Stage none never uses the engine: ds_config.json still says what ran.
  const auto none = run_zinf(args_for(dir.file("none"), 1, {"--zero-stage", "none", "--no-save"}));
  REQUIRE_MESSAGE(none.exit_code == 0, none.err);
  CHECK(json::parse(read_text(dir.file("none") + "/ds_config.json"))["zinf"]["offload"]["device_grad_accumulation"] ==
        false);
}

TEST_CASE("zinf train: an NVMe-offloaded run resumed from its checkpoint reproduces the uninterrupted losses") {
  TempDir dir("zinf-cli-offload");
  // A constant LR: the 4-step run extended to 8 must equal the 8-step run,
  // and the default schedule's warmup and cosine follow --steps.
  const std::vector<std::string> nvme = {"--zero-stage", "infinity", "--nvme-offload-path", dir.file("swap"),
                                         "--lr-schedule", "constant"};
  REQUIRE(run_zinf(args_for(dir.file("full"), 8, nvme)).exit_code == 0);
  REQUIRE(run_zinf(args_for(dir.file("part"), 4, nvme)).exit_code == 0);
  auto more = args_for(dir.file("part"), 8, nvme);
  more.push_back("--resume");
  const auto r = run_zinf(more);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto full = losses(dir.file("full")), part = losses(dir.file("part"));
  REQUIRE(part.size() == 8);
  for (std::size_t i = 0; i < 8; ++i) CHECK(part[i] == doctest::Approx(full[i]).epsilon(1e-6));
}

TEST_CASE("zinf train: an unusable NVMe path falls back to CPU offload, or fails with --strict-nvme") {
  TempDir dir("zinf-cli-offload");
  write_text(dir.file("blocker"), "a file where the swap directory should be");
  const std::vector<std::string> nvme = {"--zero-stage", "infinity", "--nvme-offload-path", dir.file("blocker/swap")};
  const auto r = run_zinf(args_for(dir.file("out"), 2, nvme));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.err.find("NVMe offload is unusable: cannot create " + dir.file("blocker/swap")) != std::string::npos);
  CHECK(r.err.find("falling back to CPU offload") != std::string::npos);
  const json cfg = json::parse(read_text(dir.file("out/ds_config.json")));
  CHECK(cfg["zero_optimization"]["offload_param"]["device"] == "cpu");
  CHECK(cfg["zero_optimization"]["offload_optimizer"]["device"] == "cpu");
  CHECK(cfg["zinf"]["offload"]["nvme_fallback"].get<std::string>().find("cannot create") != std::string::npos);

  auto strict = args_for(dir.file("strict"), 2, nvme);
  strict.push_back("--strict-nvme");
  const auto s = run_zinf(strict);
  CHECK(s.exit_code == 3);
  CHECK(s.err.find("NVMe offload is unusable") != std::string::npos);
  CHECK(s.err.find("--strict-nvme") != std::string::npos);
}

TEST_CASE("zinf train: in bf16 (fp32 master weights) the offloaded runs track stage none within bf16 tolerance") {
  TempDir dir("zinf-cli-offload");
  const std::vector<std::string> bf16 = {"--precision", "bf16"};
  auto with = [&](std::vector<std::string> flags) {
    flags.insert(flags.end(), bf16.begin(), bf16.end());
    return flags;
  };
  REQUIRE(run_zinf(args_for(dir.file("none"), 8, with({"--zero-stage", "none"}))).exit_code == 0);
  const auto want = losses(dir.file("none"));
  for (const auto& [name, flags] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"zero3", {"--zero-stage", "zero3"}},
           {"infinity-cpu", {"--preset", "infinity-cpu"}},
           {"infinity-nvme", {"--zero-stage", "infinity", "--nvme-offload-path", dir.file("swap")}}}) {
    CAPTURE(name);
    const auto r = run_zinf(args_for(dir.file(name), 8, with(flags)));
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const auto got = losses(dir.file(name));
    REQUIRE(got.size() == want.size());
    // bf16 parameters round differently when the optimizer writes them from
    // fp32 on the CPU vs LibTorch's copy on the device: 1e-3 relative over 8 steps.
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-3));
  }
}

TEST_CASE("zinf train: --device-grad-accumulation sums micro-batches on the device with the host's losses") {
  TempDir dir("zinf-cli-offload");
  const std::vector<std::string> flags = {"--preset", "infinity-cpu", "--precision", "bf16", "--grad-accum", "3"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), flags.begin(), flags.end());
    return more;
  };
  const auto host = run_zinf(args_for(dir.file("host"), 5, flags));
  REQUIRE_MESSAGE(host.exit_code == 0, host.err);
  const auto device = run_zinf(args_for(dir.file("device"), 5, with({"--device-grad-accumulation"})));
  REQUIRE_MESSAGE(device.exit_code == 0, device.err);
  // The same fp32 additions in the same order: the same losses, bit for bit.
  CHECK(losses(dir.file("device")) == losses(dir.file("host")));
  const json cfg = json::parse(read_text(dir.file("device") + "/ds_config.json"));
  CHECK(cfg["zinf"]["offload"]["device_grad_accumulation"] == true);
  CHECK(json::parse(read_text(dir.file("device") + "/summary.json"))["device_grad_accumulation"] == true);
  // The default, "auto", is off on the CPU (the sums would be a second host
  // copy), and ds_config.json and summary.json record what ran.
  const json host_cfg = json::parse(read_text(dir.file("host") + "/ds_config.json"));
  CHECK(host_cfg["zinf"]["offload"]["device_grad_accumulation"] == false);
  CHECK(json::parse(read_text(dir.file("host") + "/summary.json"))["device_grad_accumulation"] == false);
  // Three bf16 gradients per step cross per block on the host path; one fp32 sum here.
  const auto h = metrics(dir.file("host")), d = metrics(dir.file("device"));
  REQUIRE(h.size() == 5);
  REQUIRE(d.size() == 5);
  const double ratio = d[4]["d2h_bytes"].get<double>() / h[4]["d2h_bytes"].get<double>();
  CHECK(ratio == doctest::Approx(2.0 / 3.0).epsilon(0.05));  // 4 B once vs 2 B three times (the tied head adds a little)

  // Nothing to sum without accumulation: a warning, and the run goes on.
  const auto single = run_zinf(args_for(dir.file("single"), 2, {"--preset", "infinity-cpu", "--device-grad-accumulation"}));
  REQUIRE_MESSAGE(single.exit_code == 0, single.err);
  CHECK(single.err.find("zinf.offload.device_grad_accumulation has no effect: gradient_accumulation_steps is 1") !=
        std::string::npos);
}
