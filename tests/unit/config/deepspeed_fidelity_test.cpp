// config: DeepSpeed fidelity — every key DeepSpeed's models accept is
// accepted; unknown top-level keys and aio inside zero_optimization warn;
// OneCycle and LRRangeTest are schedulers with DeepSpeed's parameters;
// scheduler parameters of another type are errors naming it; keys zinf
// accepts without acting on warn once, and only when set to a value that
// matters; steps_per_print is log_every.
#include <doctest/doctest.h>

#include <algorithm>

#include "config/build.h"
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

Resolved with_file(const std::string& path, std::vector<OptionValue> more = {}) {
  more.push_back({"config", path});
  return build_config(flags(more), cpu_machine());
}

// The message and hint of the zinf::Error `fn` throws (fails the test when none).
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

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The warnings that contain `part`.
std::size_t count_warnings(const Resolved& r, const std::string& part) {
  return static_cast<std::size_t>(
      std::count_if(r.warnings.begin(), r.warnings.end(), [&](const std::string& w) { return has(w, part); }));
}

Json at(const Resolved& r, const std::string& path) {
  const Json* v = find_path(r.config, path);
  REQUIRE_MESSAGE(v != nullptr, path);
  return *v;
}

}  // namespace

TEST_CASE("DeepSpeed keys of real configs are accepted: pipeline_read/write, fp16_master_weights_and_grads, bucket 0") {
  const std::string file = kData + "/ds_hf_zero3_comms.json";
  const Resolved r = with_file(file);
  CHECK(at(r, "zero_optimization.offload_optimizer.pipeline_read") == Json(false));
  CHECK(at(r, "fp16.fp16_master_weights_and_grads") == Json(false));
  // reduce_bucket_size 0 (DeepSpeed allows it) is read as auto: hidden x hidden of the tiny model
  const std::int64_t hidden = at(r, "zinf.model.hidden_size").get<std::int64_t>();
  CHECK(at(r, "zero_optimization.reduce_bucket_size") == Json(hidden * hidden));
  CHECK(r.origins.of("zero_optimization.reduce_bucket_size") == "file " + file + ", 0 read as auto");
  CHECK(count_warnings(r, "reduce_bucket_size = 0") == 1);
  // defaults and "false" where zinf does the same: no warning about them
  CHECK(count_warnings(r, "pipeline_read") == 0);
  CHECK(count_warnings(r, "fp16_master_weights_and_grads") == 0);
  CHECK(count_warnings(r, "overlap_comm") == 0);
  CHECK(count_warnings(r, "stage3_max_live_parameters") == 0);
  CHECK(count_warnings(r, "stage3_param_persistence_threshold") == 0);  // "auto"
  CHECK(count_warnings(r, "wall_clock_breakdown") == 0);                // false
}

TEST_CASE("an unknown top-level key warns once, naming the key and the file, and is dropped") {
  const std::string file = kData + "/ds_hf_zero3_comms.json";
  const Resolved r = with_file(file);
  CHECK(count_warnings(r, "unknown top-level key 'comms_config' (in file " + file + ") is ignored") == 1);
  CHECK(find_path(r.config, "comms_config") == nullptr);

  const std::string megatron = kData + "/ds_megatron_style.json";
  const Resolved m = with_file(megatron);
  CHECK(count_warnings(m, "unknown top-level key 'pipeline_model_parallel_size' (in file " + megatron + ")") == 1);
  CHECK(count_warnings(m, "unknown top-level key 'tensor_model_parallel_size' (in file " + megatron + ")") == 1);
}

TEST_CASE("unknown keys inside sections stay errors with a suggestion, naming the file") {
  TempDir dir;
  test::write_text(dir.file("in.json"), R"({"zero_optimization": {"offload_optimizer": {"pipeline_reed": true}}})");
  const std::string msg = error_of([&] { with_file(dir.file("in.json")); });
  CHECK(has(msg, "unknown key 'zero_optimization.offload_optimizer.pipeline_reed' (in file " + dir.file("in.json") +
                     "): did you mean 'zero_optimization.offload_optimizer.pipeline_read'?"));
  // a top-level typo of a known section is an error too, not an ignored key
  test::write_text(dir.file("typo.json"), R"({"tensorbord": {"enabled": true}})");
  CHECK(has(error_of([&] { with_file(dir.file("typo.json")); }), "did you mean 'tensorboard'?"));
}

TEST_CASE("aio inside zero_optimization is read as the top-level aio, whose own keys win, with one warning") {
  const std::string file = kData + "/ds_nvme_aio_in_zero.json";
  const Resolved r = with_file(file);
  CHECK(at(r, "aio.block_size") == Json(262144));
  CHECK(at(r, "aio.queue_depth") == Json(16));  // the top-level aio sets it too, and wins
  CHECK(r.origins.of("aio.block_size") == "file " + file);
  CHECK(find_path(r.config, "zero_optimization.aio") == nullptr);
  CHECK(count_warnings(r, "zero_optimization.aio (in file " + file + ") belongs at the top level") == 1);
}

TEST_CASE("OneCycle is a scheduler with DeepSpeed's parameters, and reaches Settings") {
  const Resolved r = with_file(kData + "/ds_onecycle.json");
  CHECK(at(r, "scheduler.type") == Json("OneCycle"));
  // the warmup family's defaults are not OneCycle's: gone from the resolved file
  CHECK(find_path(r.config, "scheduler.params.warmup_min_lr") == nullptr);
  CHECK(find_path(r.config, "scheduler.params.total_num_steps") == nullptr);
  const Settings s = settings_from(r.config);
  CHECK(s.scheduler == "OneCycle");
  CHECK(s.cycle_min_lr == doctest::Approx(1e-4));
  CHECK(s.cycle_max_lr == doctest::Approx(1e-3));
  CHECK(s.cycle_first_step_size == 4);
  CHECK(s.cycle_second_step_size == 6);
  CHECK(s.decay_step_size == 2);
  CHECK(s.decay_lr_rate == doctest::Approx(0.5));
  CHECK(count_warnings(r, "cycle_momentum") == 0);  // false: nothing to cycle
}

TEST_CASE("OneCycle gets DeepSpeed's defaults; momentum cycling (on by default) warns that it has no effect") {
  TempDir dir;
  test::write_text(dir.file("oc.json"),
                   R"({"scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 1e-5, "cycle_max_lr": 1e-4}}})");
  const Resolved r = with_file(dir.file("oc.json"));
  CHECK(at(r, "scheduler.params.cycle_first_step_size") == Json(2000));
  CHECK(at(r, "scheduler.params.cycle_second_step_size") == Json(2000));
  CHECK(at(r, "scheduler.params.decay_step_size") == Json(0));
  CHECK(at(r, "scheduler.params.cycle_min_mom") == Json(0.8));
  CHECK(count_warnings(r, "scheduler.params.cycle_momentum = true (set by OneCycle's default (DeepSpeed's)) has no "
                          "effect in zinf: zinf's Adam takes beta1 once") == 1);

  test::write_text(dir.file("half.json"), R"({"scheduler": {"type": "OneCycle", "params": {"cycle_max_lr": 1e-4}}})");
  const std::string msg = error_of([&] { with_file(dir.file("half.json")); });
  CHECK(has(msg, "scheduler.type 'OneCycle' (set by file " + dir.file("half.json") +
                     ") needs scheduler.params.cycle_min_lr"));
}

TEST_CASE("LRRangeTest is a scheduler with DeepSpeed's parameters and defaults") {
  TempDir dir;
  test::write_text(dir.file("rt.json"),
                   R"({"scheduler": {"type": "LRRangeTest", "params": {"lr_range_test_min_lr": 1e-4,
                       "lr_range_test_staircase": true}}})");
  const Settings s = settings_from(with_file(dir.file("rt.json")).config);
  CHECK(s.scheduler == "LRRangeTest");
  CHECK(s.lr_range_min_lr == doctest::Approx(1e-4));
  CHECK(s.lr_range_step_size == 2000);
  CHECK(s.lr_range_step_rate == doctest::Approx(1.0));
  CHECK(s.lr_range_staircase);
}

TEST_CASE("a scheduler parameter of another type is an error naming the type it belongs to") {
  TempDir dir;
  test::write_text(dir.file("mix.json"),
                   R"({"scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 10, "cycle_min_lr": 1e-5}}})");
  std::string msg = error_of([&] { with_file(dir.file("mix.json")); });
  CHECK(has(msg, "scheduler.params.cycle_min_lr (set by file " + dir.file("mix.json") +
                     ") is a parameter of OneCycle, not of scheduler.type = 'WarmupLR'"));
  CHECK(has(msg, "set scheduler.type to OneCycle"));

  test::write_text(dir.file("cos.json"),
                   R"({"scheduler": {"type": "WarmupCosineLR", "params": {"warmup_max_lr": 1e-3}}})");
  msg = error_of([&] { with_file(dir.file("cos.json")); });
  CHECK(has(msg, "is a parameter of WarmupLR and WarmupDecayLR, not of scheduler.type = 'WarmupCosineLR'"));

  // a flag counts as set too
  test::write_text(dir.file("oc.json"),
                   R"({"scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 1e-5, "cycle_max_lr": 1e-4}}})");
  msg = error_of([&] { with_file(dir.file("oc.json"), {{"warmup-steps", "5"}}); });
  CHECK(has(msg, "scheduler.params.warmup_num_steps (set by flag --warmup-steps) is a parameter of WarmupLR"));
}

TEST_CASE("a scheduler type DeepSpeed does not have is an error listing the supported ones") {
  TempDir dir;
  test::write_text(dir.file("bad.json"), R"({"scheduler": {"type": "CosineAnnealing", "params": {}}})");
  const std::string msg = error_of([&] { with_file(dir.file("bad.json")); });
  CHECK(has(msg, "scheduler.type = 'CosineAnnealing': not an allowed value"));
  CHECK(has(msg, "allowed: WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest"));
}

TEST_CASE("keys zinf accepts without acting on warn once each, naming the key, its origin and why") {
  const std::string file = kData + "/ds_megatron_style.json";
  const Resolved r = with_file(file);
  const std::string by = " (set by file " + file + ") has no effect in zinf: ";
  CHECK(count_warnings(r, "tensorboard") == 0);  // honoured: zinf writes TensorBoard events
  CHECK(count_warnings(r, "activation_checkpointing.cpu_checkpointing = true" + by) == 1);
  CHECK(count_warnings(r, "activation_checkpointing.partition_activations = true" + by) == 1);
  CHECK(count_warnings(r, "prescale_gradients = true" + by) == 1);
  CHECK(count_warnings(r, "gradient_predivide_factor = 2.0" + by) == 1);
  CHECK(count_warnings(r, "communication_data_type = 'fp16'" + by) == 1);
  CHECK(count_warnings(r, "data_types.grad_accum_dtype = 'bf16'" + by + "zinf accumulates gradients in fp32") == 1);
  CHECK(count_warnings(r, "zero_optimization.overlap_comm = false" + by +
                              "zinf always overlaps communication with compute on its own communication worker") == 1);
  CHECK(count_warnings(r, "zero_optimization.contiguous_gradients = false" + by) == 1);
  CHECK(count_warnings(r, "aio.use_gds = true" + by) == 1);
  CHECK(count_warnings(r, "wall_clock_breakdown = true" + by) == 1);
  // values that change nothing do not warn: wandb disabled, profile false, contiguous_memory_optimization false
  CHECK(count_warnings(r, "wandb") == 0);
  CHECK(count_warnings(r, "activation_checkpointing.profile") == 0);
  CHECK(count_warnings(r, "contiguous_memory_optimization") == 0);
  // nothing else: two unknown top-level keys, the ten above and number_checkpoints
  CHECK(count_warnings(r, "activation_checkpointing.number_checkpoints = 4" + by) == 1);
  CHECK(r.warnings.size() == 13);
}

TEST_CASE("stage3 keys set to other values than zinf's warn; the defaults and auto do not") {
  TempDir dir;
  test::write_text(dir.file("s3.json"), R"({"zero_optimization": {"stage": 3, "stage3_max_live_parameters": 3e7,
      "stage3_max_reuse_distance": 1e9, "param_persistence_threshold": 1e4}})");
  const Resolved r = with_file(dir.file("s3.json"));
  CHECK(count_warnings(r, "zero_optimization.stage3_max_live_parameters = 30000000") == 1);
  CHECK(count_warnings(r, "stage3_max_reuse_distance") == 0);  // DeepSpeed's default
  // the alias DeepSpeed's model accepts is read as the stage3_ name
  CHECK(at(r, "zero_optimization.stage3_param_persistence_threshold") == Json(10000));
  CHECK(count_warnings(r, "zero_optimization.stage3_param_persistence_threshold = 10000") == 1);
}

TEST_CASE("steps_per_print is zinf's log_every unless zinf's own key or --log-every is given") {
  const std::string file = kData + "/ds_hf_zero3_comms.json";
  const Resolved r = with_file(file);
  CHECK(at(r, "zinf.train.log_every") == Json(25));
  CHECK(r.origins.of("zinf.train.log_every") == "file " + file + ", as steps_per_print");
  CHECK(settings_from(r.config).log_every == 25);
  const Resolved flagged = with_file(file, {{"log-every", "3"}});
  CHECK(at(flagged, "zinf.train.log_every") == Json(3));
  // the default (10) does not replace zinf's default (1)
  CHECK(at(build_config(flags({}), cpu_machine()), "zinf.train.log_every") == Json(1));
}

TEST_CASE("a resolved DeepSpeed file fed back resolves to itself without warnings about inert keys") {
  TempDir dir;
  const Resolved first = with_file(kData + "/ds_hf_zero3_comms.json");
  test::write_text(dir.file("resolved.json"), first.config.dump(2));
  const Resolved again = with_file(dir.file("resolved.json"));
  CHECK(again.config == first.config);
  CHECK(again.warnings.empty());
}

TEST_CASE("--explain's reason: inert keys and the sections they are in say why, honoured ones say nothing") {
  CHECK(inert_reason("tensorboard.enabled").empty());  // written natively (lib/monitor)
  CHECK(inert_reason("csv_monitor.enabled").empty());
  CHECK(has(inert_reason("wandb.enabled"), "does not report to Weights & Biases"));
  CHECK(has(inert_reason("comet.enabled"), "does not report to Comet"));
  CHECK(has(inert_reason("flops_profiler.enabled"), "FLOPs profiler"));
  CHECK(inert_reason("aio.block_size").empty());
  CHECK(inert_reason("scheduler.params.cycle_min_lr").empty());
}

TEST_CASE("fp16.consecutive_hysteresis reaches Settings; reduce_scatter false and untested-optimizer guards") {
  TempDir dir;
  test::write_text(dir.file("f.json"), R"({"fp16": {"enabled": true, "consecutive_hysteresis": true},
      "zero_allow_untested_optimizer": false, "zero_optimization": {"stage": 2, "reduce_scatter": false}})");
  const Resolved r = with_file(dir.file("f.json"));
  CHECK(settings_from(r.config).fp16_consecutive_hysteresis);
  CHECK(count_warnings(r, "zero_optimization.reduce_scatter = false (set by file " + dir.file("f.json") +
                              ") has no effect in zinf: zinf always reduce-scatters gradients") == 1);
  CHECK(count_warnings(r, "zero_allow_untested_optimizer") == 0);  // a guard: either value runs the same
  CHECK(count_warnings(r, "consecutive_hysteresis") == 0);         // honoured
}

TEST_CASE("sections zinf does not implement warn when enabled or, without 'enabled', when they set anything") {
  TempDir dir;
  test::write_text(dir.file("s.json"), R"({"flops_profiler": {"enabled": false, "profile_step": 1},
      "comms_logger": {"enabled": true}, "checkpoint": {"tag_validation": "Warn"}, "elasticity": {},
      "dataloader_drop_last": false})");
  const Resolved r = with_file(dir.file("s.json"));
  CHECK(count_warnings(r, "flops_profiler") == 0);
  CHECK(count_warnings(r, "comms_logger = {\"enabled\":true} (set by file " + dir.file("s.json") +
                              ") has no effect in zinf: zinf does not log its collectives") == 1);
  CHECK(count_warnings(r, "checkpoint = {\"tag_validation\":\"Warn\"}") == 1);
  CHECK(count_warnings(r, "elasticity") == 0);
  CHECK(count_warnings(r, "dataloader_drop_last") == 0);
}

TEST_CASE("scheduler.params.last_batch_iteration, which every DeepSpeed scheduler takes, warns unless -1") {
  TempDir dir;
  test::write_text(dir.file("a.json"),
                   R"({"scheduler": {"type": "WarmupCosineLR", "params": {"last_batch_iteration": -1}}})");
  CHECK(count_warnings(with_file(dir.file("a.json")), "last_batch_iteration") == 0);
  test::write_text(dir.file("b.json"), R"({"scheduler": {"type": "LRRangeTest", "params": {"last_batch_iteration": 99}}})");
  CHECK(count_warnings(with_file(dir.file("b.json")), "scheduler.params.last_batch_iteration = 99") == 1);
}
