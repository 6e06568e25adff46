// CLI: `zinf --help`, `zinf config`, `zinf report` on the built binary:
// outputs, files, exit codes and error messages.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "support/test_util.h"

using zinf::test::run_zinf;
using zinf::test::TempDir;
using Json = nlohmann::json;

namespace {
bool has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }
}  // namespace

TEST_CASE("zinf --help lists every subcommand and what each stage saves") {
  const auto r = run_zinf({"--help"});
  CHECK(r.exit_code == 0);
  for (const std::string sub : {"train", "estimate", "validate-nvme", "config", "launch", "report"}) {
    CAPTURE(sub);
    CHECK(has(r.out, "\n  " + sub + " "));
  }
  CHECK(has(r.out, "zero1     optimizer states"));
  CHECK(has(r.out, "zero2     zero1 + gradients"));
  CHECK(has(r.out, "zero3     zero2 + parameters"));
  CHECK(has(r.out, "infinity  zero3 + parameters and optimizer states kept on NVMe"));
}

TEST_CASE("zinf config --help explains options and names their environment variables") {
  const auto r = run_zinf({"config", "--help"});
  CHECK(r.exit_code == 0);
  CHECK(has(r.out, "--zero-stage"));
  CHECK(has(r.out, "ZINF_ZERO_STAGE"));
  CHECK(has(r.out, "--nvme-offload-params"));
  CHECK(has(r.out, "--no-nvme-offload-params"));
  CHECK(has(r.out, "ZINF_AIO_BLOCK_SIZE"));
  CHECK(has(r.out, "Merge order"));
}

TEST_CASE("zinf config prints resolved DeepSpeed JSON with no auto left") {
  const auto r = run_zinf({"config", "--zero-stage", "zero3", "--batch-size", "2", "--grad-accum", "3"});
  REQUIRE(r.exit_code == 0);
  const Json cfg = Json::parse(r.out);
  CHECK(cfg["zero_optimization"]["stage"] == 3);
  CHECK(cfg["train_micro_batch_size_per_gpu"] == 2);
  CHECK(cfg["train_batch_size"] == 6);
  CHECK(cfg["zinf"]["model"]["name"] == "tiny");
  CHECK_FALSE(has(r.out, "\"auto\""));
}

TEST_CASE("--model-type qwen2 over a named model gives q/k/v biases; other Llama types do not") {
  for (const auto& [type, bias] : std::vector<std::pair<std::string, bool>>{{"qwen2", true}, {"llama", false}, {"mistral", false}}) {
    CAPTURE(type);
    const auto r = run_zinf({"config", "--model", "tiny", "--model-type", type});
    REQUIRE(r.exit_code == 0);
    CHECK(Json::parse(r.out)["zinf"]["model"]["attention_bias"] == bias);
  }
}

TEST_CASE("zinf config --format yaml and --output write the same configuration") {
  TempDir dir;
  const auto json = run_zinf({"config", "--zero-stage", "zero2", "--output", dir.file("c.json")});
  REQUIRE(json.exit_code == 0);
  const Json written = Json::parse(zinf::test::read_text(dir.file("c.json")));
  CHECK(written["zero_optimization"]["stage"] == 2);
  const auto yaml = run_zinf({"config", "--zero-stage", "zero2", "--format", "yaml"});
  REQUIRE(yaml.exit_code == 0);
  CHECK(has(yaml.out, "stage: 2"));
  // the YAML reads back as the same configuration
  zinf::test::write_text(dir.file("c.yaml"), yaml.out);
  const auto again = run_zinf({"config", "--config", dir.file("c.yaml")});
  REQUIRE(again.exit_code == 0);
  CHECK(Json::parse(again.out) == written);
}

TEST_CASE("ZINF_* environment variables set options; flags beat them") {
  auto r = run_zinf({"config"}, {{"ZINF_ZERO_STAGE", "zero2"}, {"ZINF_AIO_QUEUE_DEPTH", "16"}});
  REQUIRE(r.exit_code == 0);
  Json cfg = Json::parse(r.out);
  CHECK(cfg["zero_optimization"]["stage"] == 2);
  CHECK(cfg["aio"]["queue_depth"] == 16);
  r = run_zinf({"config", "--aio-queue-depth", "4"}, {{"ZINF_AIO_QUEUE_DEPTH", "16"}});
  REQUIRE(r.exit_code == 0);
  CHECK(Json::parse(r.out)["aio"]["queue_depth"] == 4);
}

TEST_CASE("zinf config --explain names the origin of each value") {
  const auto r = run_zinf({"config", "--zero-stage", "zero1", "--aio-queue-depth", "4", "--explain"});
  REQUIRE(r.exit_code == 0);
  CHECK(has(r.out, "aio.queue_depth = 4    # flag --aio-queue-depth"));
  CHECK(has(r.out, "zero_optimization.stage = 1    # recipe zero1 (flag --zero-stage)"));
}

TEST_CASE("bad values exit 2 with a message naming the key and what is allowed") {
  auto r = run_zinf({"config", "--zero-stage", "zero5"});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "error: flag --zero-stage 'zero5'"));
  CHECK(has(r.err, "allowed: none, zero1, zero2, zero3, infinity"));
  CHECK(r.out.empty());

  r = run_zinf({"config", "--aio-block-size", "5000"});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "aio.block_size = 5000: must be a positive multiple of 4096"));

  r = run_zinf({"config", "--zero-stage", "infinity"});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "no NVMe path"));

  r = run_zinf({"config", "--config", "/nonexistent/ds.json"});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "/nonexistent/ds.json"));
}

TEST_CASE("a misspelt flag gets a did-you-mean") {
  const auto r = run_zinf({"config", "--aio-blok-size", "4096"});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "did you mean --aio-block-size"));
}

TEST_CASE("no subcommand is a usage error") {
  const auto r = run_zinf({});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "subcommand"));
}

TEST_CASE("zinf report prints versions, hardware and I/O support") {
  const auto r = run_zinf({"report"});
  CHECK(r.exit_code == 0);
  for (const std::string line : {"zinf ", "LibTorch", "CUDA", "NCCL", "GPUs", "CPU features", "AVX2", "AVX-512F", "RAM",
                           "io_uring", "O_DIRECT", "cuFile"}) {
    CAPTURE(line);
    CHECK(has(r.out, line));
  }
}

TEST_CASE("zinf --version") {
  const auto r = run_zinf({"--version"});
  CHECK(r.exit_code == 0);
  CHECK(has(r.out, "zinf 0."));
}
