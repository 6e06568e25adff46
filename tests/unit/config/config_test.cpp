// config: merge order, presets, DeepSpeed round trip, "auto" resolution, and
// every validation error naming the key, the value and what is allowed.
#include <doctest/doctest.h>

#include <cstdlib>

#include "config/build.h"
#include "config/loader.h"
#include "config/options.h"
#include "config/schema.h"
#include "config/settings.h"
#include "core/error.h"
#include "support/test_util.h"
#include "unit/config/inputs.h"

using namespace zinf;
using namespace zinf::config;
using namespace zinf::config::testing;
using zinf::test::TempDir;

namespace {

const std::string kData = std::string(ZINF_SOURCE_DIR) + "/tests/data";

Json at(const Resolved& r, const std::string& path) {
  const Json* v = find_path(r.config, path);
  REQUIRE_MESSAGE(v != nullptr, path);
  return *v;
}

// The message of the zinf::Error `fn` throws (fails the test when none).
template <class Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return std::string(e.what()) + " | hint: " + e.hint();
  }
  FAIL("expected a zinf::Error");
  return {};
}

// An "auto" left in a resolved configuration, except where the schema says
// the trainer decides it at start (zinf.offload.device_grad_accumulation).
bool contains_auto(const Json& v, const std::string& path = "") {
  if (is_auto(v)) {
    const KeySpec* spec = find_key(path);
    return !(spec && spec->auto_at_start);
  }
  if (v.is_object())
    for (auto it = v.begin(); it != v.end(); ++it)
      if (contains_auto(it.value(), path.empty() ? it.key() : path + "." + it.key())) return true;
  if (v.is_array())
    for (const auto& item : v)
      if (contains_auto(item, path)) return true;
  return false;
}

}  // namespace

// ------------------------------------------------------------------ merge order

TEST_CASE("merge order: defaults < preset < config file < environment < flags") {
  TempDir dir;
  const std::string file = dir.file("ds.json");
  test::write_text(file, R"({"aio": {"queue_depth": 16, "block_size": 262144, "thread_count": 2}})");

  // preset only: infinity's queue depth 8
  auto r = build_config(flags({{"zero-stage", "infinity"}, {"nvme-offload-path", "/nvme"}}), cpu_machine());
  CHECK(at(r, "aio.queue_depth") == 8);
  CHECK(r.origins.of("aio.queue_depth") == "recipe infinity (flag --zero-stage)");

  // the file beats the preset
  r = build_config(flags({{"zero-stage", "infinity"}, {"nvme-offload-path", "/nvme"}, {"config", file}}), cpu_machine());
  CHECK(at(r, "aio.queue_depth") == 16);
  CHECK(at(r, "aio.thread_count") == 2);
  CHECK(r.origins.of("aio.queue_depth") == "file " + file);

  // the environment beats the file
  r = build_config(flags({{"zero-stage", "infinity"}, {"nvme-offload-path", "/nvme"}, {"config", file}},
                         {{"aio-queue-depth", "32"}}),
                   cpu_machine());
  CHECK(at(r, "aio.queue_depth") == 32);
  CHECK(at(r, "aio.block_size") == 262144);
  CHECK(r.origins.of("aio.queue_depth") == "env ZINF_AIO_QUEUE_DEPTH");

  // flags beat the environment
  r = build_config(flags({{"zero-stage", "infinity"}, {"nvme-offload-path", "/nvme"}, {"config", file},
                          {"aio-queue-depth", "64"}},
                         {{"aio-queue-depth", "32"}}),
                   cpu_machine());
  CHECK(at(r, "aio.queue_depth") == 64);
  CHECK(r.origins.of("aio.queue_depth") == "flag --aio-queue-depth");

  // untouched keys keep the built-in default
  CHECK(at(r, "steps_per_print") == 10);
  CHECK(r.origins.of("steps_per_print") == "default");
}

TEST_CASE("the config file refines the --zero-stage recipe and a disagreeing stage is warned about") {
  TempDir dir;
  const std::string file = dir.file("ds.json");
  test::write_text(file, R"({"zero_optimization": {"stage": 2}})");
  const auto r = build_config(flags({{"zero-stage", "zero3"}, {"config", file}}), cpu_machine());
  CHECK(at(r, "zero_optimization.stage") == 2);
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0].find("zero_optimization.stage = 2") != std::string::npos);
}

TEST_CASE("source options from the environment: ZINF_ZERO_STAGE and ZINF_CONFIG") {
  const auto r = build_config(flags({}, {{"zero-stage", "zero2"}}), cpu_machine());
  CHECK(at(r, "zero_optimization.stage") == 2);
  // a flag beats the environment for the stage too
  const auto r2 = build_config(flags({{"zero-stage", "zero1"}}, {{"zero-stage", "zero2"}}), cpu_machine());
  CHECK(at(r2, "zero_optimization.stage") == 1);
}

TEST_CASE("read_env_options picks up ZINF_* variables") {
  ::setenv("ZINF_ZERO_STAGE", "zero3", 1);
  ::setenv("ZINF_AIO_BLOCK_SIZE", "2MiB", 1);
  const auto env = read_env_options(kSourceOptions | kZeroOptions);
  ::unsetenv("ZINF_ZERO_STAGE");
  ::unsetenv("ZINF_AIO_BLOCK_SIZE");
  Sources s = flags({});
  s.env = env;
  const auto r = build_config(s, cpu_machine());
  CHECK(at(r, "zero_optimization.stage") == 3);
  CHECK(at(r, "aio.block_size") == 2 * 1024 * 1024);
}

// ---------------------------------------------------------------------- presets

TEST_CASE("every stage preset resolves to its stage and offload devices") {
  struct Case { const char* preset; int stage; const char* param; const char* optimizer; };
  const Case cases[] = {{"zero1", 1, "none", "none"}, {"zero2", 2, "none", "none"}, {"zero3", 3, "none", "none"},
                        {"infinity", 3, "nvme", "nvme"}, {"infinity-cpu", 3, "cpu", "cpu"}};
  for (const auto& c : cases) {
    CAPTURE(c.preset);
    const auto r = build_config(flags({{"preset", c.preset}, {"nvme-offload-path", "/mnt/nvme"}}), cpu_machine());
    CHECK(at(r, "zero_optimization.stage") == c.stage);
    CHECK(at(r, "zero_optimization.offload_param.device") == c.param);
    CHECK(at(r, "zero_optimization.offload_optimizer.device") == c.optimizer);
    CHECK_FALSE(contains_auto(r.config));
  }
}

TEST_CASE("every preset file in presets/ loads and resolves") {
  const auto names = preset_names(kPresets);
  CHECK(names.size() >= 13);
  for (const auto& name : names) {
    CAPTURE(name);
    const auto r = build_config(flags({{"preset", name}, {"nvme-offload-path", "/mnt/nvme"}}), cpu_machine());
    CHECK_FALSE(contains_auto(r.config));
  }
}

TEST_CASE("model presets and --zero-stage combine") {
  const auto r = build_config(flags({{"preset", "gpt2-small"}, {"zero-stage", "zero2"}}), cpu_machine());
  CHECK(at(r, "zinf.model.hidden_size") == 768);
  CHECK(at(r, "zinf.model.layers") == 12);
  CHECK(at(r, "zero_optimization.stage") == 2);
}

TEST_CASE("configs/*.json templates mean the same as the presets of the same name") {
  const std::pair<const char*, const char*> pairs[] = {
      {"zero1", "zero1"}, {"zero2", "zero2"}, {"zero3", "zero3"}, {"infinity_cpu", "infinity-cpu"}};
  for (const auto& [config, preset] : pairs) {
    CAPTURE(config);
    const auto from_file = build_config(
        flags({{"config", std::string(ZINF_SOURCE_DIR) + "/configs/" + config + ".json"}}), cpu_machine());
    const auto from_preset = build_config(flags({{"preset", preset}}), cpu_machine());
    for (const char* key : {"zero_optimization.stage", "zero_optimization.offload_param.device",
                            "zero_optimization.offload_optimizer.device", "bf16.enabled", "optimizer.params.lr"})
      CHECK_MESSAGE(at(from_file, key) == at(from_preset, key), key);
  }
}

TEST_CASE("infinity with both NVMe switches off is stage 3 with CPU offload") {
  const auto r = build_config(
      flags({{"zero-stage", "infinity"}, {"nvme-offload-params", "false"}, {"nvme-offload-optimizer", "false"}}),
      cpu_machine());
  CHECK(at(r, "zero_optimization.stage") == 3);
  CHECK(at(r, "zero_optimization.offload_param.device") == "cpu");
  CHECK(at(r, "zero_optimization.offload_optimizer.device") == "cpu");
  CHECK(describe_zero(r.config) == "infinity (params: cpu, optimizer: cpu)");
}

TEST_CASE("infinity keeps parameters on CPU and the optimizer on NVMe when asked") {
  const auto r = build_config(flags({{"zero-stage", "infinity"}, {"nvme-offload-path", "/nvme"},
                                     {"nvme-offload-params", "0"}, {"nvme-offload-gradients", "1"}}),
                              cpu_machine());
  CHECK(at(r, "zero_optimization.offload_param.device") == "cpu");
  CHECK(at(r, "zero_optimization.offload_optimizer.device") == "nvme");
  CHECK(at(r, "zero_optimization.offload_optimizer.nvme_path") == "/nvme");
  CHECK(at(r, "zinf.offload.gradients") == "nvme");
}

TEST_CASE("--no-nvme-offload-params leaves a stage without offload alone") {
  const auto r = build_config(flags({{"zero-stage", "zero2"}, {"nvme-offload-params", "false"}}), cpu_machine());
  CHECK(at(r, "zero_optimization.offload_param.device") == "none");
}

// ------------------------------------------------------------- DeepSpeed files

TEST_CASE("a DeepSpeed ZeRO-3 config with \"auto\" values is accepted as-is and resolved") {
  const auto r = build_config(flags({{"config", kData + "/ds_zero3_auto.json"}}), gpu_machine());
  CHECK_FALSE(contains_auto(r.config));
  CHECK(at(r, "zero_optimization.sub_group_size") == 1000000000);
  CHECK(at(r, "zero_optimization.sub_group_size").is_number_integer());
  CHECK(at(r, "zero_optimization.stage3_max_live_parameters") == 1000000000);
  CHECK(at(r, "steps_per_print") == 2000);
  // auto resolved from the model (tiny: hidden 128) and the machine (bf16 GPU)
  CHECK(at(r, "zero_optimization.reduce_bucket_size") == 128 * 128);
  CHECK(at(r, "zero_optimization.stage3_param_persistence_threshold") == 1280);
  CHECK(at(r, "bf16.enabled") == true);
  CHECK(at(r, "fp16.enabled") == false);
  CHECK(at(r, "scheduler.params.warmup_max_lr") == at(r, "optimizer.params.lr"));
  CHECK(at(r, "optimizer.params.betas") == Json::array({0.9, 0.999}));
}

TEST_CASE("the ZeRO-Infinity NVMe example: 1e8-style numbers become integers, ignored sections are kept") {
  const auto r = build_config(flags({{"config", kData + "/ds_infinity_nvme.json"}}), cpu_machine());
  CHECK(at(r, "zero_optimization.offload_param.buffer_size") == 100000000);
  CHECK(at(r, "zero_optimization.offload_param.max_in_cpu") == 1000000000);
  CHECK(at(r, "zero_optimization.stage3_prefetch_bucket_size") == 10000000);
  CHECK(at(r, "aio.queue_depth") == 32);
  CHECK(at(r, "train_batch_size") == 8);
  CHECK(at(r, "tensorboard.enabled") == true);
}

TEST_CASE("YAML and JSON spellings of the same config resolve identically") {
  const auto json = build_config(flags({{"config", kData + "/ds_infinity_nvme.json"}}), cpu_machine());
  const auto yaml = build_config(flags({{"config", kData + "/zinf_infinity.yaml"}}), cpu_machine());
  CHECK(json.config == yaml.config);
}

TEST_CASE("DeepSpeed round trip: the resolved file, read back, means the same") {
  TempDir dir;
  for (const char* name : {"ds_zero3_auto.json", "ds_infinity_nvme.json"}) {
    CAPTURE(name);
    const auto first = build_config(flags({{"config", kData + "/" + name}}), gpu_machine());
    const std::string written = dir.file(std::string("resolved-") + name);
    test::write_text(written, first.config.dump(2));
    const auto second = build_config(flags({{"config", written}}), gpu_machine());
    CHECK(first.config == second.config);
    // and as YAML
    const std::string yaml = dir.file(std::string("resolved-") + name + ".yaml");
    test::write_text(yaml, to_yaml(first.config));
    const auto third = build_config(flags({{"config", yaml}}), gpu_machine());
    CHECK(first.config == third.config);
  }
}

// ---------------------------------------------------------------- auto values

TEST_CASE("batch sizes: auto from the other two and the world size") {
  TempDir dir;
  const std::string file = dir.file("b.json");
  test::write_text(file, R"({"train_batch_size": 64, "gradient_accumulation_steps": 2})");
  MachineFacts m = cpu_machine();
  m.world_size = 4;
  const auto r = build_config(flags({{"config", file}}), m);
  CHECK(at(r, "train_micro_batch_size_per_gpu") == 8);

  const auto r2 = build_config(flags({{"batch-size", "3"}, {"grad-accum", "5"}}), m);
  CHECK(at(r2, "train_batch_size") == 60);
}

TEST_CASE("precision auto: bf16 on a bf16 GPU, fp16 on an older GPU, fp32 on CPU") {
  auto r = build_config(flags({}), gpu_machine(true));
  CHECK(at(r, "bf16.enabled") == true);
  CHECK(at(r, "zinf.train.device") == "cuda");
  r = build_config(flags({}), gpu_machine(false));
  CHECK(at(r, "bf16.enabled") == false);
  CHECK(at(r, "fp16.enabled") == true);
  r = build_config(flags({}), cpu_machine());
  CHECK(at(r, "bf16.enabled") == false);
  CHECK(at(r, "fp16.enabled") == false);
  CHECK(at(r, "zinf.train.device") == "cpu");
  CHECK(at(r, "zinf.train.gpus") == "none");
}

TEST_CASE("model dimensions: a name, then custom dimensions override it") {
  const auto r = build_config(flags({{"model", "gpt2-medium"}, {"layers", "6"}}), cpu_machine());
  CHECK(at(r, "zinf.model.hidden_size") == 1024);
  CHECK(at(r, "zinf.model.layers") == 6);
  const Settings s = settings_from(r.config);
  CHECK(s.model.name == "custom");
  CHECK(s.model.layers == 6);
}

TEST_CASE("--lr-schedule and --warmup-steps map to DeepSpeed's scheduler") {
  const auto r = build_config(flags({{"lr-schedule", "cosine"}, {"warmup-steps", "10"}, {"steps", "200"},
                                     {"lr", "1e-3"}}),
                              cpu_machine());
  CHECK(at(r, "scheduler.type") == "WarmupCosineLR");
  CHECK(at(r, "scheduler.params.warmup_num_steps") == 10);
  CHECK(at(r, "scheduler.params.total_num_steps") == 200);
  const Settings s = settings_from(r.config);
  CHECK(s.lr == doctest::Approx(1e-3));
  CHECK(s.scheduler == "WarmupCosineLR");
}

TEST_CASE("Settings reads the resolved offload and aio values") {
  const auto r = build_config(flags({{"zero-stage", "infinity"}, {"nvme-offload-path", "/nvme"},
                                     {"aio-block-size", "512KiB"}, {"pin-memory", "false"}}),
                              cpu_machine());
  const Settings s = settings_from(r.config);
  CHECK(s.zero_stage == 3);
  CHECK(s.offload_param.device == zinf::Tier::kNvme);
  CHECK(s.offload_param.nvme_path == "/nvme");
  CHECK_FALSE(s.offload_param.pin_memory);
  CHECK(s.aio_block_size == 512 * 1024);
  CHECK(s.sub_group_size > 0);
}

// ---------------------------------------------------------------------- errors

TEST_CASE("unknown stage lists the allowed values") {
  const auto msg = error_of([] { build_config(flags({{"zero-stage", "zero4"}}), cpu_machine()); });
  CHECK(msg.find("'zero4'") != std::string::npos);
  CHECK(msg.find("none, zero1, zero2, zero3, infinity") != std::string::npos);
}

TEST_CASE("stage out of range in a file names the key") {
  TempDir dir;
  test::write_text(dir.file("s.json"), R"({"zero_optimization": {"stage": 4}})");
  const auto msg = error_of([&] { build_config(flags({{"config", dir.file("s.json")}}), cpu_machine()); });
  CHECK(msg.find("zero_optimization.stage = 4") != std::string::npos);
  CHECK(msg.find("<= 3") != std::string::npos);
}

TEST_CASE("block size must be a positive multiple of 4096") {
  auto msg = error_of([] { build_config(flags({{"aio-block-size", "1000"}}), cpu_machine()); });
  CHECK(msg.find("aio.block_size = 1000") != std::string::npos);
  CHECK(msg.find("multiple of 4096") != std::string::npos);
  CHECK(msg.find("flag --aio-block-size") != std::string::npos);
  msg = error_of([] { build_config(flags({{"aio-block-size", "0"}}), cpu_machine()); });
  CHECK(msg.find("must be positive") != std::string::npos);
  msg = error_of([] { build_config(flags({{"aio-block-size", "-4096"}}), cpu_machine()); });
  CHECK(msg.find("cannot be negative") != std::string::npos);
}

TEST_CASE("queue depth outside 1..1024") {
  for (const char* bad : {"0", "1025", "-1"}) {
    CAPTURE(bad);
    const auto msg = error_of([&] { build_config(flags({{"aio-queue-depth", bad}}), cpu_machine()); });
    CHECK(msg.find("aio.queue_depth") != std::string::npos);
    CHECK(msg.find(">= 1 and <= 1024") != std::string::npos);
  }
}

TEST_CASE("zero and negative sizes are refused") {
  auto msg = error_of([] { build_config(flags({{"batch-size", "0"}}), cpu_machine()); });
  CHECK(msg.find("train_micro_batch_size_per_gpu = 0: must be positive") != std::string::npos);
  msg = error_of([] { build_config(flags({{"steps", "-5"}}), cpu_machine()); });
  CHECK(msg.find("zinf.train.steps = -5") != std::string::npos);
  TempDir dir;
  test::write_text(dir.file("b.json"), R"({"zero_optimization": {"offload_param": {"buffer_size": -1}}})");
  msg = error_of([&] { build_config(flags({{"config", dir.file("b.json")}}), cpu_machine()); });
  CHECK(msg.find("zero_optimization.offload_param.buffer_size = -1") != std::string::npos);
  msg = error_of([] { build_config(flags({{"steps", "ten"}}), cpu_machine()); });
  CHECK(msg.find("flag --steps 'ten': not a whole number") != std::string::npos);
}

TEST_CASE("malformed JSON and YAML say line and column") {
  TempDir dir;
  test::write_text(dir.file("bad.json"), "{\n  \"zero_optimization\": {\n    \"stage\": 3,\n  }\n}\n");
  auto msg = error_of([&] { build_config(flags({{"config", dir.file("bad.json")}}), cpu_machine()); });
  CHECK(msg.find("bad.json:4:") != std::string::npos);
  CHECK(msg.find("malformed JSON") != std::string::npos);
  test::write_text(dir.file("bad.yaml"), "zero_optimization:\n  stage: 3\n offload: [\n");
  msg = error_of([&] { build_config(flags({{"config", dir.file("bad.yaml")}}), cpu_machine()); });
  CHECK(msg.find("malformed YAML") != std::string::npos);
  CHECK(msg.find("bad.yaml:3:") != std::string::npos);
}

TEST_CASE("a missing config file is named") {
  const auto msg = error_of([] { build_config(flags({{"config", "/no/such/ds.json"}}), cpu_machine()); });
  CHECK(msg.find("/no/such/ds.json") != std::string::npos);
  CHECK(msg.find("does not exist") != std::string::npos);
}

TEST_CASE("unknown and misspelt keys are named by path with a suggestion") {
  TempDir dir;
  test::write_text(dir.file("typo.json"), R"({"zero_optimization": {"stage": 3, "ofload_param": {"device": "cpu"}}})");
  auto msg = error_of([&] { build_config(flags({{"config", dir.file("typo.json")}}), cpu_machine()); });
  CHECK(msg.find("unknown key 'zero_optimization.ofload_param'") != std::string::npos);
  CHECK(msg.find("did you mean 'zero_optimization.offload_param'") != std::string::npos);

  test::write_text(dir.file("typo2.json"), R"({"aio": {"queu_depth": 8}})");
  msg = error_of([&] { build_config(flags({{"config", dir.file("typo2.json")}}), cpu_machine()); });
  CHECK(msg.find("did you mean 'aio.queue_depth'") != std::string::npos);

  // a section at the wrong level: suggest where it belongs
  test::write_text(dir.file("misplaced.json"), R"({"offload_optimizer": {"device": "cpu"}})");
  msg = error_of([&] { build_config(flags({{"config", dir.file("misplaced.json")}}), cpu_machine()); });
  CHECK(msg.find("did you mean 'zero_optimization.offload_optimizer'") != std::string::npos);
}

TEST_CASE("an unknown device value suggests the right one") {
  TempDir dir;
  test::write_text(dir.file("d.json"), R"({"zero_optimization": {"stage": 3, "offload_param": {"device": "nvm"}}})");
  const auto msg = error_of([&] { build_config(flags({{"config", dir.file("d.json")}}), cpu_machine()); });
  CHECK(msg.find("zero_optimization.offload_param.device = 'nvm'") != std::string::npos);
  CHECK(msg.find("did you mean 'nvme'") != std::string::npos);
  CHECK(msg.find("none, cpu, nvme") != std::string::npos);
}

TEST_CASE("NVMe device without a path") {
  const auto msg = error_of([] { build_config(flags({{"zero-stage", "infinity"}}), cpu_machine()); });
  CHECK(msg.find("offload_param.device is 'nvme'") != std::string::npos);
  CHECK(msg.find("--nvme-offload-path") != std::string::npos);
}

TEST_CASE("parameter offload with stage < 3 says it needs zero3 or infinity") {
  const auto msg = error_of([] {
    build_config(flags({{"zero-stage", "zero2"}, {"nvme-offload-params", "true"}, {"nvme-offload-path", "/n"}}),
                 cpu_machine());
  });
  CHECK(msg.find("zero_optimization.offload_param.device = 'nvme'") != std::string::npos);
  CHECK(msg.find("needs ZeRO stage 3") != std::string::npos);
  CHECK(msg.find("zero3 or infinity") != std::string::npos);
}

TEST_CASE("optimizer offload to NVMe needs stage 3; to CPU needs stage >= 1") {
  auto msg = error_of([] {
    build_config(flags({{"zero-stage", "zero2"}, {"nvme-offload-optimizer", "true"}, {"nvme-offload-path", "/n"}}),
                 cpu_machine());
  });
  CHECK(msg.find("zero_optimization.offload_optimizer.device = 'nvme'") != std::string::npos);
  TempDir dir;
  test::write_text(dir.file("o.json"), R"({"zero_optimization": {"stage": 0, "offload_optimizer": {"device": "cpu"}}})");
  msg = error_of([&] { build_config(flags({{"config", dir.file("o.json")}}), cpu_machine()); });
  CHECK(msg.find("needs ZeRO stage 1 or higher") != std::string::npos);
}

TEST_CASE("fp16 and bf16 both enabled conflict") {
  TempDir dir;
  test::write_text(dir.file("p.json"), R"({"fp16": {"enabled": true}, "bf16": {"enabled": true}})");
  const auto msg = error_of([&] { build_config(flags({{"config", dir.file("p.json")}}), cpu_machine()); });
  CHECK(msg.find("fp16.enabled and bf16.enabled are both true") != std::string::npos);
}

TEST_CASE("inconsistent batch sizes state the rule and the numbers") {
  TempDir dir;
  test::write_text(dir.file("b.json"),
                   R"({"train_batch_size": 10, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2})");
  const auto msg = error_of([&] { build_config(flags({{"config", dir.file("b.json")}}), cpu_machine()); });
  CHECK(msg.find("train_batch_size = 10") != std::string::npos);
  CHECK(msg.find("4 * 2 * 1 = 8") != std::string::npos);
}

TEST_CASE("heads must divide the hidden size") {
  const auto msg = error_of([] { build_config(flags({{"hidden-size", "100"}, {"heads", "3"}}), cpu_machine()); });
  CHECK(msg.find("zinf.model.heads = 3") != std::string::npos);
  CHECK(msg.find("not divisible") != std::string::npos);
}

TEST_CASE("\"auto\" where a key does not accept it") {
  TempDir dir;
  test::write_text(dir.file("a.json"), R"({"aio": {"queue_depth": "auto"}})");
  const auto msg = error_of([&] { build_config(flags({{"config", dir.file("a.json")}}), cpu_machine()); });
  CHECK(msg.find("aio.queue_depth = 'auto': this key does not accept \"auto\"") != std::string::npos);
}

TEST_CASE("unknown preset lists the available ones") {
  const auto msg = error_of([] { build_config(flags({{"preset", "infinty"}}), cpu_machine()); });
  CHECK(msg.find("unknown preset 'infinty'") != std::string::npos);
  CHECK(msg.find("did you mean 'infinity'") != std::string::npos);
  CHECK(msg.find("zero3") != std::string::npos);
}

TEST_CASE("bad environment values name the variable") {
  const auto msg = error_of([] { build_config(flags({}, {{"aio-queue-depth", "lots"}}), cpu_machine()); });
  CHECK(msg.find("env ZINF_AIO_QUEUE_DEPTH 'lots'") != std::string::npos);
}

TEST_CASE("the schema's defaults are themselves valid") {
  Origins none;
  CHECK_NOTHROW(check_against_schema(defaults(), none, true));
}

TEST_CASE("device gradient sums: \"auto\" by default and left for the trainer; true, false and auto as given") {
  const auto r = build_config(flags({{"preset", "infinity-cpu"}}), gpu_machine());
  CHECK(at(r, "zinf.offload.device_grad_accumulation") == "auto");
  CHECK_FALSE(settings_from(r.config).device_grad_accumulation.has_value());
  for (const char* v : {"true", "false"}) {
    CAPTURE(v);
    const auto given = build_config(flags({{"preset", "infinity-cpu"}, {"device-grad-accumulation", v}}), gpu_machine());
    CHECK(settings_from(given.config).device_grad_accumulation == (std::string(v) == "true"));
  }
  TempDir dir;
  test::write_text(dir.file("auto.json"), R"({"zinf": {"offload": {"device_grad_accumulation": "auto"}}})");
  const auto file = build_config(flags({{"preset", "infinity-cpu"}, {"config", dir.file("auto.json")}}), gpu_machine());
  CHECK_FALSE(settings_from(file.config).device_grad_accumulation.has_value());
  test::write_text(dir.file("bad.json"), R"({"zinf": {"offload": {"device_grad_accumulation": "maybe"}}})");
  const auto msg =
      error_of([&] { build_config(flags({{"preset", "infinity-cpu"}, {"config", dir.file("bad.json")}}), gpu_machine()); });
  CHECK(msg.find("zinf.offload.device_grad_accumulation") != std::string::npos);
  CHECK(msg.find("maybe") != std::string::npos);
}

// ------------------------------------------------------------- the training recipe

TEST_CASE("no scheduler given: WarmupCosineLR with an auto warmup, down to 10% of the peak") {
  const auto r = build_config(flags({}), cpu_machine());
  CHECK(at(r, "scheduler.type") == "WarmupCosineLR");
  CHECK(r.origins.of("scheduler.type") == "auto");
  CHECK(at(r, "scheduler.params.warmup_num_steps") == 5);  // 100 steps: max(2% = 2, min(5, 10))
  CHECK(r.origins.of("scheduler.params.warmup_num_steps") == "auto");
  CHECK(at(r, "scheduler.params.cos_min_ratio") == 0.1);
  CHECK(r.origins.of("scheduler.params.cos_min_ratio") == "auto");
  CHECK(at(r, "scheduler.params.warmup_min_ratio") == 0.0);
  CHECK(at(r, "scheduler.params.total_num_steps") == 100);
  CHECK(find_path(r.config, "scheduler.params.warmup_max_lr") == nullptr);  // WarmupCosineLR scales the optimizer lr
  const Settings s = settings_from(r.config);
  CHECK(s.scheduler == "WarmupCosineLR");
  CHECK(s.cos_min_ratio == doctest::Approx(0.1));
  CHECK_FALSE(s.weight_decay_all);
}

TEST_CASE("the recipe's warmup: 2% of the run, at least a few steps, never the whole run") {
  // steps -> warmup steps
  const std::vector<std::pair<int, int>> cases = {{1, 0},  {2, 1},   {9, 1},    {10, 1},   {25, 2},   {49, 4},
                                                  {50, 5}, {250, 5}, {251, 6}, {500, 10}, {1000, 20}, {100000, 2000}};
  for (const auto& [steps, warmup] : cases) {
    CAPTURE(steps);
    const auto r = build_config(flags({{"steps", std::to_string(steps)}}), cpu_machine());
    CHECK(at(r, "scheduler.params.warmup_num_steps") == warmup);
    CHECK(at(r, "scheduler.params.warmup_num_steps").get<int>() < std::max(steps, 2));
  }
  // an explicit warmup stays, under the recipe's cosine
  const auto r = build_config(flags({{"warmup-steps", "7"}}), cpu_machine());
  CHECK(at(r, "scheduler.type") == "WarmupCosineLR");
  CHECK(at(r, "scheduler.params.warmup_num_steps") == 7);
  CHECK(r.origins.of("scheduler.params.warmup_num_steps") == "flag --warmup-steps");
}

TEST_CASE("a scheduler the user names keeps DeepSpeed's meaning: no warmup unless given, cos_min_ratio 1e-4") {
  const auto flag = build_config(flags({{"lr-schedule", "cosine"}}), cpu_machine());
  CHECK(at(flag, "scheduler.type") == "WarmupCosineLR");
  CHECK(flag.origins.of("scheduler.type") == "flag --lr-schedule");
  CHECK(at(flag, "scheduler.params.warmup_num_steps") == 0);
  CHECK(at(flag, "scheduler.params.cos_min_ratio") == 0.0001);
  const auto constant = build_config(flags({{"lr-schedule", "constant"}}), cpu_machine());
  CHECK(at(constant, "scheduler.type") == "WarmupLR");
  CHECK(at(constant, "scheduler.params.warmup_num_steps") == 0);
  CHECK(find_path(constant.config, "scheduler.params.cos_min_ratio") == nullptr);
  TempDir dir;
  test::write_text(dir.file("ds.json"), R"({"scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 50}}})");
  const auto file = build_config(flags({{"config", dir.file("ds.json")}}), cpu_machine());
  CHECK(at(file, "scheduler.params.warmup_num_steps") == 0);
  CHECK(at(file, "scheduler.params.cos_min_ratio") == 0.0001);
  CHECK(at(file, "scheduler.params.total_num_steps") == 50);
}

TEST_CASE("fine-tuning (zinf.model.from_pretrained set) resolves an auto lr to 2e-5; a given lr stays") {
  const auto r = build_config(flags({{"from-pretrained", kData + "/hf/models/llama"}, {"data-format", "llmc"}}), cpu_machine());
  CHECK(at(r, "optimizer.params.lr") == 2e-5);
  CHECK(r.origins.of("optimizer.params.lr").rfind("auto", 0) == 0);
  const auto warmup = build_config(flags({{"from-pretrained", kData + "/hf/models/llama"}, {"data-format", "llmc"}, {"lr-schedule", "constant"}}),
                                   cpu_machine());
  CHECK(at(warmup, "scheduler.params.warmup_max_lr") == 2e-5);  // follows the lr
  const auto given = build_config(flags({{"from-pretrained", kData + "/hf/models/llama"}, {"data-format", "llmc"}, {"lr", "1e-4"}}), cpu_machine());
  CHECK(at(given, "optimizer.params.lr") == 1e-4);
  CHECK(at(build_config(flags({}), cpu_machine()), "optimizer.params.lr") == 3e-4);
}

TEST_CASE("zinf.optimizer.weight_decay_on: matrices by default, all for DeepSpeed's decay of every parameter") {
  TempDir dir;
  test::write_text(dir.file("all.json"), R"({"zinf": {"optimizer": {"weight_decay_on": "all"}}})");
  CHECK(settings_from(build_config(flags({{"config", dir.file("all.json")}}), cpu_machine()).config).weight_decay_all);
  test::write_text(dir.file("bad.json"), R"({"zinf": {"optimizer": {"weight_decay_on": "norms"}}})");
  const std::string msg = error_of([&] { build_config(flags({{"config", dir.file("bad.json")}}), cpu_machine()); });
  CHECK(msg.find("zinf.optimizer.weight_decay_on") != std::string::npos);
  CHECK(msg.find("matrices, all") != std::string::npos);
}

TEST_CASE("the recipe line says lr, schedule, weight decay and clipping") {
  const auto r = build_config(flags({{"steps", "500"}}), cpu_machine());
  CHECK(describe_recipe(r.config, r.origins) ==
        "recipe: AdamW lr 3e-4 (auto), warmup 10 steps then cosine to 3e-5 at step 500, weight decay 0.01 on block "
        "matrices (not norms, biases, embeddings), clip 1.0");
  const auto ft = build_config(flags({{"from-pretrained", kData + "/hf/models/llama"}, {"data-format", "llmc"}, {"lr-schedule", "constant"},
                                      {"weight-decay", "0"}, {"steps", "20"}}),
                               cpu_machine());
  CHECK(describe_recipe(ft.config, ft.origins) == "recipe: AdamW lr 2e-5 (auto, fine-tuning), constant, no weight decay, clip 1.0");
  TempDir dir;
  test::write_text(dir.file("ds.json"), R"({"gradient_clipping": 0, "zinf": {"optimizer": {"weight_decay_on": "all"},
      "model": {"model_type": "llama", "tied_embeddings": false}},
      "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_num_steps": 3, "warmup_max_lr": 1e-3}}})");
  const auto ds = build_config(flags({{"config", dir.file("ds.json")}}), cpu_machine());
  CHECK(describe_recipe(ds.config, ds.origins) ==
        "recipe: AdamW lr 0.001, warmup 3 steps then linear decay to 0 at step 100, weight decay 0.01 on every "
        "parameter, no clipping");
}
