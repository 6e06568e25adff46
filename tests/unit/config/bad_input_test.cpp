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

using namespace zinf;
using namespace zinf::config;
using zinf::test::error_of;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

const std::string kPresets = std::string(ZINF_SOURCE_DIR) + "/presets";

Sources sources(std::vector<OptionValue> flags, std::vector<OptionValue> env = {}) {
  Sources s;
  s.flags = std::move(flags);
  s.env = std::move(env);
  s.presets_dir = kPresets;
  return s;
}

MachineFacts cpu_machine() {
  MachineFacts m;
  m.cpu_memory_bytes = 16LL << 30;
  return m;
}

std::string build_error(std::vector<OptionValue> flags, std::vector<OptionValue> env = {}) {
  return error_of([&] { build_config(sources(std::move(flags), std::move(env)), cpu_machine()); });
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
  Sources s = sources({{"preset", "mine"}});
  s.presets_dir = dir.path();
  const auto msg = error_of([&] { build_config(s, cpu_machine()); });
  CHECK(has(msg, "unknown key 'zero_optimization.stagee' (in preset mine (" + dir.file("mine.yaml") + "))"));
}
