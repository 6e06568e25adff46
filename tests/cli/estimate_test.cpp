// cli: `zinf estimate` prints every option with its needs and fit, marks the
// recommendation, emits the documented JSON, reports the configured option as
// "selected", rejects bad input with exit codes 2/3, and regenerates the
// committed table in docs/estimates.md exactly.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include "core/model_spec.h"
#include "support/test_util.h"

using zinf::test::run_program;
using zinf::test::run_zinf;
using Json = nlohmann::json;

namespace {

const std::vector<std::string> kGpt2Cpu = {"estimate", "--model", "gpt2-small", "--batch-size", "2",
                                           "--seq-len", "128", "--device", "cpu", "--cpu-memory-gb", "64"};

std::vector<std::string> with(std::vector<std::string> base, const std::vector<std::string>& more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

Json run_json(const std::vector<std::string>& args, int expected_exit = 0) {
  const auto r = run_zinf(with(args, {"--json"}));
  INFO(r.err);
  REQUIRE(r.exit_code == expected_exit);
  return Json::parse(r.out);
}

const Json& option_named(const Json& j, const std::string& name) {
  for (const auto& o : j.at("options"))
    if (o.at("name") == name) return o;
  FAIL("no option " << name);
  static Json none;
  return none;
}

}  // namespace

TEST_CASE("estimate prints a row per option with GPU, CPU and NVMe columns and marks the recommendation") {
  const auto r = run_zinf(kGpt2Cpu);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  for (const char* column : {"GPU/rank", "CPU/node", "NVMe/node", "fits"}) CHECK(r.out.find(column) != std::string::npos);
  for (const char* name : {"none", "zero1", "zero2", "zero3", "zero3+cpu-optimizer", "infinity-cpu",
                           "infinity-nvme-optimizer", "infinity-nvme"})
    CHECK(r.out.find(std::string(name) + " ") != std::string::npos);
  CHECK(r.out.find("\n *  none ") != std::string::npos);  // the fastest option fits 64 GiB
  CHECK(r.out.find("recommended: none, the fastest option that fits with 10% of each memory kept free") !=
        std::string::npos);
  CHECK(r.out.find("fp32 parameters") != std::string::npos);  // the breakdown of the recommended option
}

TEST_CASE("estimate --json has params, options with their fields, and recommended") {
  const Json j = run_json(kGpt2Cpu);
  zinf::ModelSpec spec = *zinf::find_model("gpt2-small");
  spec.seq_len = 128;
  CHECK(j.at("params").get<std::int64_t>() == spec.parameter_count());
  CHECK(j.at("precision") == "fp32");  // CPU runs train in fp32
  REQUIRE(j.at("options").size() == 8);
  for (const auto& o : j.at("options")) {
    for (const char* key : {"zero_stage", "offload_param", "offload_optimizer", "gpu_bytes", "cpu_bytes", "nvme_bytes",
                            "fits"})
      CHECK_MESSAGE(o.contains(key), key);
    CHECK(o.at("gpu_bytes") == 0);  // a CPU run: nothing on a GPU
  }
  const Json& none = option_named(j, "none");
  CHECK(none.at("zero_stage") == 0);
  CHECK(none.at("fits") == true);
  // fp32 parameters, gradients, Adam m and v: 16 bytes per parameter at least.
  CHECK(none.at("cpu_bytes").get<std::int64_t>() > 16 * spec.parameter_count());
  const Json& inf = option_named(j, "infinity-nvme");
  CHECK(inf.at("offload_param") == "nvme");
  CHECK(inf.at("offload_optimizer") == "nvme");
  // fp32 parameters, the engine's own fp32 master with m and v, and the
  // gradients (they follow an NVMe optimizer), in 4096-byte segments.
  CHECK(inf.at("nvme_bytes").get<std::int64_t>() >= 20 * spec.parameter_count());
  CHECK(inf.at("nvme_bytes").get<std::int64_t>() < 20 * spec.parameter_count() + 4096 * 1000);
  CHECK(inf.at("fits") == false);  // NVMe space unknown without a path
  CHECK(j.at("recommended") == "none");
  CHECK_FALSE(j.contains("selected"));
}

TEST_CASE("a stage given on the command line is reported as selected") {
  const Json j = run_json(with(kGpt2Cpu, {"--zero-stage", "zero2"}));
  REQUIRE(j.contains("selected"));
  CHECK(j.at("selected").at("name") == "zero2");
  CHECK(j.at("selected").at("zero_stage") == 2);
  CHECK(j.at("selected").at("cpu_bytes") == option_named(j, "zero2").at("cpu_bytes"));
}

TEST_CASE("a DeepSpeed config file's stage, offload and precision are what estimate reports as selected") {
  zinf::test::TempDir dir;
  const std::string ds = dir.file("ds.json");
  zinf::test::write_text(ds, R"({"bf16": {"enabled": true},
    "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}})");
  const Json j = run_json(with(kGpt2Cpu, {"--config", ds}));
  CHECK(j.at("precision") == "bf16");  // the file's choice wins over the CPU default
  CHECK(j.at("selected").at("name") == "zero3+cpu-optimizer");
  CHECK(j.at("selected").at("zero_stage") == 3);
  CHECK(j.at("selected").at("offload_optimizer") == "cpu");
  CHECK(j.at("selected").at("offload_param") == "none");
}

TEST_CASE("infinity with an NVMe path is selected and judged against that filesystem's free space") {
  zinf::test::TempDir dir;
  const Json j = run_json(with(kGpt2Cpu, {"--zero-stage", "infinity", "--nvme-offload-path", dir.file("swap")}));
  CHECK(j.at("hardware").at("nvme_free_bytes").is_number());
  CHECK(j.at("selected").at("name") == "infinity-nvme");
  CHECK(j.at("selected").at("nvme_bytes").get<std::int64_t>() > 0);
}

TEST_CASE("GPU estimates split optimizer states over --gpus and --nodes") {
  const std::vector<std::string> base = {"estimate", "--model", "6.7b", "--batch-size", "1", "--gpu-memory-gb", "64",
                                         "--cpu-memory-gb", "1024", "--precision", "bf16"};
  const Json one = run_json(with(base, {"--gpus", "1"}));
  const Json eight = run_json(with(base, {"--gpus", "8"}));
  const Json sixteen = run_json(with(base, {"--gpus", "8", "--nodes", "2"}));
  CHECK(one.at("target") == "cuda");
  auto gpu = [](const Json& j, const char* name) { return option_named(j, name).at("gpu_bytes").get<std::int64_t>(); };
  CHECK(gpu(one, "none") == gpu(eight, "none"));  // plain data parallel replicates everything
  CHECK(gpu(eight, "zero1") < gpu(one, "zero1"));
  CHECK(gpu(sixteen, "zero3") < gpu(eight, "zero3"));
  // 6.7b without checkpointing: zero1's full fp32 gradient accumulator does not fit 64 GiB, zero2 does.
  CHECK(eight.at("recommended") == "zero2");
  // --gpus also takes GPU ids: four ids are four GPUs.
  const Json ids = run_json(with(base, {"--gpus", "0,1,2,3"}));
  CHECK(ids.at("gpus_per_node") == 4);
}

TEST_CASE("--params derives a GPT-3 shape") {
  // 175B on 8 x 80 GiB GPUs: only the infinity options fit; with 4 TiB of CPU
  // memory the fastest of them keeps the optimizer in RAM.
  const Json j = run_json({"estimate", "--params", "175B", "--gpus", "8", "--gpu-memory-gb", "80", "--cpu-memory-gb",
                           "4096", "--nvme-free-gb", "30000"});
  CHECK(j.at("recommended") == "infinity-cpu");
  CHECK(j.at("params") == 175000000000LL);
  CHECK(j.at("model").at("hidden_size") == 12288);
  CHECK(j.at("model").at("layers") == 96);
  CHECK(j.at("model").at("shape_derived_from_params") == true);
  CHECK(option_named(j, "zero3+cpu-optimizer").at("fits") == false);  // 97.7 GiB per GPU
  CHECK(option_named(j, "infinity-nvme").at("fits") == true);
  // With 1 TiB of CPU memory the master weights and moments must go to NVMe.
  const Json small_host = run_json({"estimate", "--params", "175B", "--gpus", "8", "--gpu-memory-gb", "80",
                                    "--cpu-memory-gb", "1024", "--nvme-free-gb", "30000"});
  CHECK(small_host.at("recommended") == "infinity-nvme-optimizer");
}

TEST_CASE("bad counts are usage errors naming the flag") {
  struct Case { std::vector<std::string> args; std::string message; };
  const Case cases[] = {
      {{"--gpus", "0"}, "--gpus is 0: must be at least 1"},
      {{"--gpus=-2"}, "--gpus is -2: must be at least 1"},
      {{"--nodes", "0"}, "--nodes is 0: must be at least 1"},
      {{"--nodes=-1"}, "--nodes is -1: must be at least 1"},
      {{"--batch-size", "0"}, "train_micro_batch_size_per_gpu = 0: must be positive (set by flag --batch-size)"},
      {{"--batch-size=-3"}, "train_micro_batch_size_per_gpu = -3: must be positive"},
      {{"--seq-len", "0"}, "zinf.model.seq_len = 0: must be positive (set by flag --seq-len)"},
      {{"--params", "-5"}, "--params '-5': not a positive parameter count"},
      {{"--gpu-memory-gb", "0"}, "--gpu-memory-gb is 0: must be positive"},
      {{"--gpus", "4096", "--nodes", "4096"}, "4096 x --nodes 4096 = 16777216 ranks: more than 1048576"},
      {{"--params", "7B", "--model", "1b"}, "--params and --model both describe the model"},
  };
  for (const auto& c : cases) {
    const auto r = run_zinf(with({"estimate"}, c.args));
    INFO(c.args.front(), " -> ", r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(c.message) != std::string::npos);
  }
}

TEST_CASE("an unknown model name lists the known ones") {
  const auto r = run_zinf({"estimate", "--model", "gpt5"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("'gpt5'") != std::string::npos);
  CHECK(r.err.find("gpt2-small") != std::string::npos);
  CHECK(r.err.find("13b") != std::string::npos);
}

TEST_CASE("hardware that fits nothing exits 3 saying how much more is needed and what would fit") {
  const auto r = run_zinf({"estimate", "--model", "13b", "--gpus", "1", "--batch-size", "8", "--gpu-memory-gb", "80",
                           "--cpu-memory-gb", "128", "--nvme-free-gb", "100"});
  CHECK(r.exit_code == 3);
  CHECK(r.out.find("nothing fits") != std::string::npos);  // the table still prints
  CHECK(r.err.find("error: nothing fits this hardware") != std::string::npos);
  CHECK(r.err.find("the closest option, ") != std::string::npos);
  CHECK(r.err.find(" more ") != std::string::npos);
  CHECK(r.err.find("would fit on") != std::string::npos);
}

TEST_CASE("the committed table in docs/estimates.md is what zinf estimate prints now") {
  const std::string doc = zinf::test::read_text(std::string(ZINF_SOURCE_DIR) + "/docs/estimates.md");
  const auto r = run_program(std::string(ZINF_SOURCE_DIR) + "/tools/make_estimate_table.sh",
                             {"--only", "6.7b", "--zinf", ZINF_BINARY});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::istringstream lines(r.out);
  std::string line;
  int rows = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    CHECK_MESSAGE(doc.find("\n" + line + "\n") != std::string::npos,
                  "docs/estimates.md lacks: " << line << "\nregenerate: tools/make_estimate_table.sh --update docs/estimates.md");
    if (line.rfind("| ", 0) == 0) ++rows;
  }
  CHECK(rows == 10);  // header, rule, 8 options
}
