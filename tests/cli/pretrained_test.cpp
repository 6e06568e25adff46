// CLI: `zinf train --from-pretrained DIR` on the committed tiny HF models
// (tests/data/hf/models): the model keys come from DIR/config.json, the
// first step's loss is transformers' loss on the same tokens (computed here
// from the fixture's recorded logits), every stage and offload option starts
// from the same weights, and a broken directory stops the run by name.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/run_metrics.h"
#include "support/test_util.h"

using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using zinf::test::write_llmc_u16;
using zinf::test::write_text;
using Json = nlohmann::json;

namespace {

const std::string kModels = std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/models/";

bool has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

// Row 0 of the fixture's input ids.
std::vector<std::uint16_t> fixture_row(const std::string& dir) {
  const Json j = Json::parse(read_text(dir + "/expected.json"));
  return j["input_ids"][0].get<std::vector<std::uint16_t>>();
}


// transformers' next-token loss on row 0 (its first T-1 positions), from the
// fp32 logits [2, T, V] the fixture recorded in expected.safetensors.
double hf_row0_loss(const std::string& dir, std::int64_t vocab) {
  const std::string file = read_text(dir + "/expected.safetensors");
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);
  const Json header = Json::parse(file.substr(8, header_len));
  const auto& e = header["logits"];
  REQUIRE(e["dtype"] == "F32");
  const std::int64_t T = e["shape"][1].get<std::int64_t>();
  const float* logits = reinterpret_cast<const float*>(file.data() + 8 + header_len + e["data_offsets"][0].get<std::size_t>());
  const auto ids = fixture_row(dir);
  double total = 0;
  for (std::int64_t t = 0; t + 1 < T; ++t) {
    const float* row = logits + t * vocab;
    double peak = row[0];
    for (std::int64_t v = 1; v < vocab; ++v) peak = std::max(peak, double(row[v]));
    double sum = 0;
    for (std::int64_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - peak);
    total += peak + std::log(sum) - row[ids[std::size_t(t + 1)]];
  }
  return total / double(T - 1);
}

std::vector<double> losses(const std::string& out) { return zinf::test::step_losses(out); }

}  // namespace

TEST_CASE("zinf config --from-pretrained takes the model from the directory's config.json") {
  TempDir dir;
  write_llmc_u16(dir.file("row0.bin"), fixture_row(kModels + "llama"));
  const auto r = run_zinf({"config", "--from-pretrained", kModels + "llama", "--dataset-file", dir.file("row0.bin")});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const Json m = Json::parse(r.out)["zinf"]["model"];
  CHECK(m["model_type"] == "llama");
  CHECK(m["vocab_size"] == 96);
  CHECK(m["hidden_size"] == 32);
  CHECK(m["kv_heads"] == 2);
  CHECK(m["intermediate_size"] == 48);
  CHECK(m["head_dim"] == 8);
  CHECK(m["rope_theta"] == 500000.0);
  CHECK(m["rope_scaling"]["rope_type"] == "llama3");
  CHECK(m["rope_scaling"]["original_max_position_embeddings"] == 16);
  CHECK(m["tied_embeddings"] == false);
  CHECK(m["seq_len"] == 64);  // the model's positions, at most 2048

  const auto both = run_zinf({"config", "--from-pretrained", kModels + "llama", "--model", "gpt2-small"});
  CHECK(both.exit_code == 2);
  CHECK(has(both.err, "zinf.model.name 'gpt2-small' (set by flag --model) and zinf.model.from_pretrained"));

  const auto missing = run_zinf({"config", "--from-pretrained", "/nonexistent/model"});
  CHECK(missing.exit_code == 2);
  CHECK(has(missing.err, "cannot read /nonexistent/model/config.json"));
}

TEST_CASE("--from-pretrained encodes text with the directory's own tokenizer unless --tokenizer names one") {
  TempDir dir;
  std::filesystem::copy(kModels + "llama/config.json", dir.file("config.json"));
  std::filesystem::copy(std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/tokenizers/gpt2/tokenizer.json",
                        dir.file("tokenizer.json"));
  const auto r = run_zinf({"config", "--from-pretrained", dir.path()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(Json::parse(r.out)["zinf"]["data"]["tokenizer"] == dir.path());
  const std::string other = std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/tokenizers/qwen2";
  const auto named = run_zinf({"config", "--from-pretrained", dir.path(), "--tokenizer", other});
  REQUIRE(named.exit_code == 0);
  CHECK(Json::parse(named.out)["zinf"]["data"]["tokenizer"] == other);
}

TEST_CASE("a Mistral sliding window bounds seq_len: zinf attends fully, which equals it only inside the window") {
  TempDir dir;
  std::string config = read_text(kModels + "mistral/config.json");
  config.replace(config.find("\"sliding_window\": null"), 22, "\"sliding_window\": 16");
  write_text(dir.file("config.json"), config);
  write_llmc_u16(dir.file("row0.bin"), fixture_row(kModels + "mistral"));
  const auto r = run_zinf({"config", "--from-pretrained", dir.path(), "--dataset-file", dir.file("row0.bin")});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "zinf.model.seq_len = 64: is longer than the model's sliding_window 16"));
  const auto ok = run_zinf({"config", "--from-pretrained", dir.path(), "--seq-len", "16", "--dataset-file", dir.file("row0.bin")});
  INFO(ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(Json::parse(ok.out)["zinf"]["model"]["sliding_window"] == 16);
}

TEST_CASE("zinf train --from-pretrained: the first loss is transformers', on every stage and offload option") {
  TempDir dir;
  for (const char* name : {"llama-sharded", "gpt2-fp16", "qwen2"}) {
    CAPTURE(name);
    const std::string model = kModels + name;
    write_llmc_u16(dir.file("row0.bin"), fixture_row(model));
    const double want = hf_row0_loss(model, 96);
    for (const std::vector<std::string>& stage : std::vector<std::vector<std::string>>{
             {"--zero-stage", "none"}, {"--zero-stage", "zero2"}, {"--zero-stage", "zero3"}, {"--preset", "infinity-cpu"}}) {
      CAPTURE(stage[1]);
      const std::string out = dir.file(std::string("run-") + name + "-" + stage[1]);
      // One window of the 16 tokens: inputs 0..14, targets 1..15, as HF's shifted labels.
      std::vector<std::string> args{"train", "--device", "cpu", "--from-pretrained", model, "--dataset-file",
                                    dir.file("row0.bin"), "--val-dataset-file", dir.file("row0.bin"), "--seq-len",
                                    "15", "--batch-size", "1", "--steps", "2", "--output-dir", out, "--no-save",
                                    // the recipe's warmup would run step 1 at lr 0: a constant lr shows it learning
                                    "--lr", "1e-2", "--lr-schedule", "constant"};
      args.insert(args.end(), stage.begin(), stage.end());
      const auto r = run_zinf(args);
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
      CHECK(has(r.err, "weights: pretrained " + model));
      const auto l = losses(out);
      REQUIRE(l.size() == 2);
      CHECK(l[0] == doctest::Approx(want).epsilon(1e-5));
      CHECK(l[1] < l[0]);  // it trains from there
    }
  }
}

TEST_CASE("zinf train --from-pretrained --resume takes every weight from the checkpoint, reading no safetensors") {
  TempDir dir;
  namespace fs = std::filesystem;
  fs::copy(kModels + "llama-sharded", dir.file("m"));
  write_llmc_u16(dir.file("row0.bin"), fixture_row(kModels + "llama"));
  const auto args = [&](const std::string& out, int steps, bool resume) {
    std::vector<std::string> a{"train", "--device", "cpu", "--from-pretrained", dir.file("m"), "--dataset-file",
                               dir.file("row0.bin"), "--val-dataset-file", dir.file("row0.bin"), "--seq-len", "15",
                               "--batch-size", "1", "--steps", std::to_string(steps), "--output-dir", out,
                               "--save-every", "2", "--zero-stage", "zero3",
                               // a schedule that does not depend on --steps, so 2 + 2 steps are 4
                               "--lr", "1e-3", "--lr-schedule", "constant"};
    if (resume) a.push_back("--resume");
    return a;
  };
  const auto full = run_zinf(args(dir.file("full"), 4, false));
  REQUIRE_MESSAGE(full.exit_code == 0, full.err);
  const auto half = run_zinf(args(dir.file("half"), 2, false));
  REQUIRE_MESSAGE(half.exit_code == 0, half.err);
  // The weights are gone: only config.json (the model's shape) is left to read.
  for (const auto& e : fs::directory_iterator(dir.file("m")))
    if (e.path().extension() == ".safetensors") fs::remove(e.path());
  const auto resumed = run_zinf(args(dir.file("half"), 4, true));
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK(has(resumed.err, "weights: from the checkpoint being resumed"));
  const auto want = losses(dir.file("full")), got = losses(dir.file("half"));
  REQUIRE(want.size() == 4);
  REQUIRE(got.size() == 4);
  CHECK(got == want);
}

TEST_CASE("zinf train --from-pretrained refuses a directory with a missing shard or a misshapen tensor") {
  TempDir dir;
  namespace fs = std::filesystem;
  fs::copy(kModels + "llama-sharded", dir.file("m"));
  write_llmc_u16(dir.file("row0.bin"), fixture_row(kModels + "llama"));
  const std::vector<std::string> args{"train", "--device", "cpu", "--from-pretrained", dir.file("m"),
                                      "--dataset-file", dir.file("row0.bin"), "--val-dataset-file",
                                      dir.file("row0.bin"), "--seq-len", "15", "--batch-size", "1", "--steps", "1",
                                      "--output-dir", dir.file("out")};
  fs::remove(dir.file("m/model-00003-of-00005.safetensors"));
  const auto r = run_zinf(args);
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, dir.file("m/model-00003-of-00005.safetensors") + " is missing"));
  CHECK(!fs::exists(dir.file("out/checkpoints/latest")));

  // The run changes a dimension the weights have: the first tensor that differs is named.
  fs::copy(kModels + "llama-sharded/model-00003-of-00005.safetensors", dir.file("m/model-00003-of-00005.safetensors"));
  auto wider = args;
  wider.insert(wider.end(), {"--intermediate-size", "64"});
  const auto w = run_zinf(wider);
  CHECK(w.exit_code == 2);
  CHECK(has(w.err, "has shape [48, 32], the model expects [64, 32]"));
}

TEST_CASE("zinf generate (KV cache, greedy) continues each fixture's prompt exactly as transformers' generate") {
  for (const char* name : {"gpt2", "gpt2-sharded", "llama", "llama-linear-bf16", "qwen2", "mistral"}) {
    CAPTURE(name);
    const std::string model = kModels + name;
    const Json expected = Json::parse(read_text(model + "/expected.json"));
    const auto prompt = expected["greedy_prompt"].get<std::vector<int>>();
    auto want = expected["greedy_tokens"].get<std::vector<int>>();
    want.erase(want.begin(), want.begin() + std::ptrdiff_t(prompt.size()));
    std::string ids;
    for (int t : prompt) ids += (ids.empty() ? "" : ",") + std::to_string(t);
    const auto r = run_zinf({"generate", model, "--device", "cpu", "--prompt-tokens", ids, "--max-new-tokens",
                             std::to_string(want.size())});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const Json out = Json::parse(r.out);
    CHECK(out["prompt_tokens"].get<std::vector<int>>() == prompt);
    CHECK(out["generated_tokens"].get<std::vector<int>>() == want);
  }
}

TEST_CASE("zinf generate samples reproducibly from its seed; top-p keeps the most likely token at least") {
  const std::string model = kModels + "llama";
  auto gen = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"generate", model, "--device", "cpu", "--prompt-tokens", "15,51,6,53",
                                  "--max-new-tokens", "12"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_zinf(args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return Json::parse(r.out)["generated_tokens"].get<std::vector<int>>();
  };
  const auto greedy = gen({});
  const auto a = gen({"--temperature", "1.5", "--sample-seed", "7"});
  CHECK(a == gen({"--temperature", "1.5", "--sample-seed", "7"}));
  CHECK(a != greedy);  // 12 draws at temperature 1.5 from a random model's flat distribution
  CHECK(gen({"--temperature", "1.5", "--top-p", "0.000001", "--sample-seed", "3"}) == greedy);

  const auto bad = run_zinf({"generate", model, "--device", "cpu", "--prompt-tokens", "15,96"});
  CHECK(bad.exit_code == 2);
  CHECK(has(bad.err, "prompt token 96 is outside the model's vocabulary [0, 96)"));
  const auto none = run_zinf({"generate", model, "--device", "cpu"});
  CHECK(none.exit_code == 2);
  CHECK(has(none.err, "no prompt given"));
  const auto text = run_zinf({"generate", model, "--device", "cpu", "--prompt", "hello"});
  CHECK(text.exit_code == 2);
  CHECK(has(text.err, "--prompt needs a tokenizer, and " + model + " has no tokenizer.json or tokenizer.model"));
}

TEST_CASE("zinf eval: transformers' loss on an HF directory, the same through the engine and from a checkpoint") {
  TempDir dir;
  const std::string model = kModels + "llama";
  write_llmc_u16(dir.file("row0.bin"), fixture_row(model));
  const double want = hf_row0_loss(model, 96);
  auto eval = [&](const std::string& what, std::vector<std::string> extra) {
    std::vector<std::string> args{"eval", what, "--device", "cpu", "--dataset-file", dir.file("row0.bin"), "--seq-len",
                                  "15", "--batch-size", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_zinf(args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return Json::parse(r.out);
  };
  const Json dense = eval(model, {});
  CHECK(dense["loss"].get<double>() == doctest::Approx(want).epsilon(1e-5));
  CHECK(dense["perplexity"].get<double>() == doctest::Approx(std::exp(want)).epsilon(1e-5));
  CHECK(dense["tokens"] == 15);
  CHECK(dense["windows"] == 1);
  CHECK(eval(model, {"--preset", "infinity-cpu"})["loss"].get<double>() == doctest::Approx(want).epsilon(1e-5));

  // A run at lr 0 saves the weights it started from: its checkpoint scores the same.
  const auto t = run_zinf({"train", "--device", "cpu", "--from-pretrained", model, "--dataset-file", dir.file("row0.bin"),
                           "--val-dataset-file", dir.file("row0.bin"), "--seq-len", "15", "--batch-size", "1",
                           "--steps", "1", "--lr", "0", "--output-dir", dir.file("run")});
  INFO(t.err);
  REQUIRE(t.exit_code == 0);
  CHECK(eval(dir.file("run"), {})["loss"].get<double>() == doctest::Approx(want).epsilon(1e-5));

  const auto longer = run_zinf({"eval", model, "--device", "cpu", "--dataset-file", dir.file("row0.bin"), "--seq-len", "16"});
  CHECK(longer.exit_code == 2);
  CHECK(has(longer.err, "has 16 tokens; one window needs seq_len + 1 = 17"));
  write_llmc_u16(dir.file("big.bin"), std::vector<std::uint16_t>(20, 200));
  const auto vocab = run_zinf({"eval", model, "--device", "cpu", "--dataset-file", dir.file("big.bin"), "--seq-len", "15"});
  CHECK(vocab.exit_code == 2);
  CHECK(has(vocab.err, "200"));
}
