// config: bad input is refused before it can hurt, and errors say where it
// came from: misspelt keys and sections attributed to the file (JSON or
// YAML), env variable or flag that set them; keys that cannot be paths;
// files nested deeper than any configuration needs; sizes whose products do
// not fit 64 bits.
#include <doctest/doctest.h>

#include <string>

#include "config/build.h"
#include "config/loader.h"
#include "config/origins.h"
#include "core/error.h"
#include "support/test_util.h"
#include "unit/config/inputs.h"

using namespace zinf;
using namespace zinf::config;
using namespace zinf::config::testing;
using zinf::test::error_of;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

std::string build_error(std::vector<OptionValue> values, std::vector<OptionValue> env = {}) {
  return error_of([&] { build_config(flags(std::move(values), std::move(env)), cpu_machine()); });
}

bool has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

}  // namespace

// ---------------------------------------------------------------- origins

TEST_CASE("a misspelt section in a JSON or YAML file is attributed to that file, not to the defaults") {
  TempDir dir;
  write_text(dir.file("s.json"), R"({"zero_optimization": {"offload_parm": {"device": "cpu"}}})");
  auto msg = build_error({{"config", dir.file("s.json")}});
  CHECK(has(msg, "unknown key 'zero_optimization.offload_parm' (in file " + dir.file("s.json") + ")"));
  CHECK(has(msg, "did you mean 'zero_optimization.offload_param'?"));
  CHECK_FALSE(has(msg, "default"));

  write_text(dir.file("s.yaml"), "zero_optimisation:\n  stage: 3\n");
  msg = build_error({{"config", dir.file("s.yaml")}});
  CHECK(has(msg, "unknown key 'zero_optimisation' (in file " + dir.file("s.yaml") + ")"));

  write_text(dir.file("k.yaml"), "zero_optimization:\n  stagee: 3\n");
  msg = build_error({{"config", dir.file("k.yaml")}});
  CHECK(has(msg, "unknown key 'zero_optimization.stagee' (in file " + dir.file("k.yaml") + ")"));

  // the same file through ZINF_CONFIG
  msg = build_error({}, {{"config", dir.file("s.json")}});
  CHECK(has(msg, "(in file " + dir.file("s.json") + ")"));
}

TEST_CASE("origins: a section set only through its keys has the origin of its keys") {
  Origins o;
  o.set_leaves(Json::parse(R"({"a": {"b": {"c": 1}}, "d": 2})"), "file x.json");
  CHECK(o.of("a.b.c") == "file x.json");
  CHECK(o.of("a.b.c.deeper") == "file x.json");
  CHECK(o.of("a.b") == "file x.json");
  CHECK(o.of("a") == "file x.json");
  CHECK(o.of("ab") == "default");
  CHECK(o.of("a.bc") == "default");
  CHECK(o.all().size() == 2);  // leaves only: `zinf config --explain` lists values, not sections
}

TEST_CASE("a value rewritten from its deprecated key keeps the origin of the key the file wrote") {
  TempDir dir;
  write_text(dir.file("old.json"), R"({"zero_optimization": {"stage": 0, "cpu_offload": true}})");
  const auto msg = build_error({{"config", dir.file("old.json")}});
  CHECK(has(msg, "needs ZeRO stage 1 or higher"));
  CHECK(has(msg, "(set by file " + dir.file("old.json") + ", as zero_optimization.cpu_offload)"));
}

TEST_CASE("values from ZINF_* variables and flags name the variable and the flag") {
  CHECK(has(build_error({}, {{"aio-block-size", "1000"}}), "(set by env ZINF_AIO_BLOCK_SIZE)"));
  CHECK(has(build_error({{"aio-block-size", "1000"}}), "(set by flag --aio-block-size)"));
  CHECK(has(build_error({{"heads", "7"}}), "(set by flag --heads)"));
}

TEST_CASE("keys with a '.' or an empty name are refused, naming the file") {
  TempDir dir;
  // {"zero_optimization.stage": 3} used to pass as the path zero_optimization.stage and be ignored.
  write_text(dir.file("dotted.json"), R"({"zero_optimization.stage": 3})");
  auto msg = build_error({{"config", dir.file("dotted.json")}});
  CHECK(has(msg, "key 'zero_optimization.stage' (in file " + dir.file("dotted.json") +
                     ") is not a key name: it contains '.'"));
  CHECK(has(msg, R"(nest it: "zero_optimization": {"stage": ...)"));

  write_text(dir.file("empty.json"), R"({"": 1})");
  msg = build_error({{"config", dir.file("empty.json")}});
  CHECK(has(msg, "key '' (in file " + dir.file("empty.json") + ") is empty"));

  write_text(dir.file("inner.yaml"), "aio:\n  '': 1\n");
  msg = build_error({{"config", dir.file("inner.yaml")}});
  CHECK(has(msg, "key '' under aio (in file " + dir.file("inner.yaml") + ") is empty"));
}

TEST_CASE("a misspelt key in a preset file names the preset's file") {
  TempDir dir;
  write_text(dir.file("mine.yaml"), "zero_optimization:\n  stagee: 3\n");
  Sources s = flags({{"preset", "mine"}});
  s.presets_dir = dir.path();
  const auto msg = error_of([&] { build_config(s, cpu_machine()); });
  CHECK(has(msg, "unknown key 'zero_optimization.stagee' (in preset mine (" + dir.file("mine.yaml") + "))"));
}

// ---------------------------------------------------------------- nesting

namespace {

// {"flops_profiler": {"flops_profiler": ... 1}} with `levels` objects in all.
std::string nested_json(int levels) {
  std::string text;
  for (int i = 1; i < levels; ++i) text += "{\"flops_profiler\": ";
  text += "{\"x\": 1}";
  for (int i = 1; i < levels; ++i) text += "}";
  return text;
}

}  // namespace

TEST_CASE("a JSON file nested 50,000 levels deep is refused naming the file, the limit and the place") {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 50000; ++i) text += "{\"zero_optimization\": ";
  text += "1";
  for (int i = 0; i < 50000; ++i) text += "}";
  write_text(dir.file("deep.json"), text);
  const auto msg = build_error({{"config", dir.file("deep.json")}});
  CHECK(has(msg, dir.file("deep.json") + ":1:"));
  CHECK(has(msg, "nested more than 64 levels deep"));
  CHECK(has(msg, "(at zero_optimization.zero_optimization.zero_optimization."));
  try {
    load_config_file(dir.file("deep.json"));
    FAIL("a 50,000-deep file was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
  }
}

TEST_CASE("JSON: 64 levels load, 65 do not; brackets inside strings do not count") {
  CHECK(parse_json_text(nested_json(kMaxConfigDepth), "ok.json").is_object());
  const auto msg = error_of([] { parse_json_text(nested_json(kMaxConfigDepth + 1), "deep.json"); });
  CHECK(has(msg, "deep.json:1:"));
  CHECK(has(msg, "nested more than 64 levels deep (at flops_profiler.flops_profiler."));
  const std::string brackets(1000, '[');
  const Json v = parse_json_text("{\"s\": \"" + brackets + "\\\"{{\"}", "strings.json");
  CHECK(v["s"].get<std::string>() == brackets + "\"{{");
  // arrays count as levels too
  CHECK(has(error_of([] { parse_json_text("{\"a\": " + std::string(100, '[') + std::string(100, ']') + "}", "a.json"); }),
            "(at a[][][][][][][]...)"));
}

TEST_CASE("YAML nested too deep by flow brackets, '- ' entries, indentation or aliases is refused") {
  const int n = 50000;
  auto msg = error_of([&] { parse_yaml_text("a: " + std::string(n, '[') + std::string(n, ']') + "\n", "flow.yaml"); });
  CHECK(has(msg, "flow.yaml:1: nested more than 64 levels deep"));
  std::string dashes = "a:\n  ";
  for (int i = 0; i < n; ++i) dashes += "- ";
  msg = error_of([&] { parse_yaml_text(dashes + "x\n", "dashes.yaml"); });
  CHECK(has(msg, "dashes.yaml:2: nested more than 64 levels deep"));
  std::string blocks;
  for (int i = 0; i < 100; ++i) blocks += std::string(std::size_t(i), ' ') + "k" + std::to_string(i) + ":\n";
  msg = error_of([&] { parse_yaml_text(blocks, "blocks.yaml"); });
  CHECK(has(msg, "blocks.yaml:65: nested more than 64 levels deep"));
  // each alias nests the one before: deep in the values, shallow in the text
  std::string aliases = "a0: &a0 [1]\n";
  for (int i = 1; i < 100; ++i)
    aliases += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" + std::to_string(i - 1) + "]\n";
  msg = error_of([&] { parse_yaml_text(aliases, "aliases.yaml"); });
  CHECK(has(msg, "aliases.yaml: nested more than 64 levels deep (at a63[][][][][][][]...)"));
  // and aliases that multiply: 10^7 values from ten lines
  std::string laughs = "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int i = 1; i < 7; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    laughs += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev;
    for (int k = 1; k < 10; ++k) laughs += ", " + prev;
    laughs += "]\n";
  }
  msg = error_of([&] { parse_yaml_text(laughs, "laughs.yaml"); });
  CHECK(has(msg, "laughs.yaml: more than 1048576 values"));
}

TEST_CASE("YAML that only looks deep loads: brackets in quotes, comments, plain text and block scalars") {
  const std::string deep_text(200, '[');
  std::string dashes;  // "- - - ...": 100 levels, were it not text
  for (int i = 0; i < 100; ++i) dashes += "- ";
  const std::string text = "zero_optimization:\n"
                           "  stage: 3  # [[[[[[ " + deep_text + "\n"
                           "  offload_param: {device: cpu, nvme_path: '" + deep_text + "'}\n"
                           "wandb:\n"
                           "  project: a[b" + deep_text + "\n"
                           "  note: |\n"
                           "    " + dashes + "\n"
                           "    " + deep_text + "\n"
                           "  team: \"it's \\\"" + deep_text + "\"\n"
                           "  keep: >-  # folded, no final newline\n"
                           "    " + dashes + "\n"
                           "    " + deep_text + "\n";
  const Json v = parse_yaml_text(text, "ok.yaml");
  CHECK(v["zero_optimization"]["stage"] == 3);
  CHECK(v["zero_optimization"]["offload_param"]["nvme_path"] == deep_text);
  CHECK(v["wandb"]["project"] == "a[b" + deep_text);
  CHECK(v["wandb"]["team"] == "it's \"" + deep_text);
  CHECK(has(v["wandb"]["keep"].get<std::string>(), deep_text));
  // 64 levels of block mappings load
  std::string blocks;
  for (int i = 0; i < kMaxConfigDepth; ++i) blocks += std::string(std::size_t(2 * i), ' ') + "k:\n";
  CHECK(parse_yaml_text(blocks, "ok.yaml").is_object());
}

// ---------------------------------------------------------------- sizes

TEST_CASE("model dimensions above the supported sizes are refused naming the flag and the limit") {
  CHECK(build_error({{"hidden-size", "9000000000"}, {"layers", "1"}, {"heads", "1"}}) ==
        "zinf.model.hidden_size = 9000000000: above the largest supported 1048576 (set by flag --hidden-size) | hint: "
        "allowed: >= 1 and <= 1048576");
  CHECK(has(build_error({{"seq-len", "1e9"}}), "zinf.model.seq_len = 1000000000: above the largest supported 16777216"));
  CHECK(has(build_error({{"vocab-size", "1e9"}}), "zinf.model.vocab_size = 1000000000: above the largest supported"));
  CHECK(has(build_error({}, {{"layers", "1e6"}}), "zinf.model.layers = 1000000: above the largest supported 65536 "
                                                  "(set by env ZINF_LAYERS)"));
  // within every bound, but 2^20 wide and 2^16 deep is more parameters than zinf plans for
  CHECK(has(build_error({{"hidden-size", "1048576"}, {"layers", "65536"}, {"heads", "8"}}),
            "hidden 1048576 x layers 65536 (vocab 256, seq_len 128) makes 864692022213083136 parameters, above the "
            "largest supported 1125899906842624"));
  // element counts are at most a model's largest count
  TempDir dir;
  write_text(dir.file("bucket.json"), R"({"zero_optimization": {"reduce_bucket_size": 9e18}})");
  CHECK(has(build_error({{"config", dir.file("bucket.json")}}),
            "zero_optimization.reduce_bucket_size = 9e+18: above the largest supported 1125899906842624 (set by file"));
}

TEST_CASE("batch sizes whose product overflows are refused naming the three") {
  CHECK(has(build_error({{"batch-size", "9000000000000000000"}, {"grad-accum", "2"}}),
            "the samples per step (train_micro_batch_size_per_gpu x gradient_accumulation_steps x ranks) would overflow "
            "64-bit integers (train_micro_batch_size_per_gpu 9000000000000000000, gradient_accumulation_steps 2, "
            "ranks 1)"));
  TempDir dir;
  write_text(dir.file("b.json"), R"({"train_batch_size": 8, "gradient_accumulation_steps": 9e18})");
  MachineFacts two = cpu_machine();
  two.world_size = 2;
  CHECK(has(error_of([&] { build_config(flags({{"config", dir.file("b.json")}}), two); }),
            "(train_micro_batch_size_per_gpu 1, gradient_accumulation_steps 9000000000000000000, ranks 2)"));
  // tokens of the run: batch x seq_len x steps
  CHECK(has(build_error({{"batch-size", "1e12"}, {"seq-len", "1e7"}}),
            "the run's token count (train_batch_size x seq_len x zinf.train.steps) would overflow 64-bit integers "
            "(train_batch_size 1000000000000, seq_len 10000000, steps 100)"));
  // a whole number too large for 64 bits is "too large", not "not a whole number"
  CHECK(build_error({{"steps", "1e19"}}) == "flag --steps '1e19': too large | hint: allowed: a whole number of at most 9e18");
}

TEST_CASE("sub-groups of one element are refused before anything lists 124M of them") {
  TempDir dir;
  write_text(dir.file("sg.json"), R"({"zero_optimization": {"sub_group_size": 1}})");
  CHECK(build_error({{"model", "gpt2-small"}, {"config", dir.file("sg.json")}}) ==
        "zero_optimization.sub_group_size = 1: cuts the model's 124475904 parameters into more than 67108864 "
        "optimizer sub-groups (set by file " + dir.file("sg.json") + ") | hint: allowed: at least 2 for this model, "
        "or \"auto\" (DeepSpeed's default is 1e9)");
}

// ------------------------------------------------------------------ files

TEST_CASE("config files larger than 16 MiB, or devices that never end, are refused; pipes are read") {
  TempDir dir;
  write_text(dir.file("big.json"), "{" + std::string(std::size_t(kMaxConfigBytes), ' ') + "}");
  CHECK(error_of([&] { load_config_file(dir.file("big.json")); }) ==
        "config file '" + dir.file("big.json") + "' is 16777218 bytes: more than the 16777216 bytes (16.00 MiB) a "
        "configuration may have "
        "| hint: give --config a DeepSpeed JSON or YAML configuration (they are a few KiB)");
  CHECK(has(error_of([] { load_config_file("/dev/zero"); }),
            "config file '/dev/zero' holds more than the 16777216 bytes (16.00 MiB) a configuration may have"));
}
