// cli: checkpoints that were damaged or do not belong to the run are refused
// end to end (tiny model, CPU): a seeded sweep of single-bit flips over every
// file of a checkpoint (state.rank0.safetensors, checkpoint.json, latest)
// makes `zinf train --resume` and `zinf export` exit non-zero with a clear
// message (export may succeed only where the flip is in optimizer state it
// does not read, and then writes the clean weights); export onto its own
// source is refused and the checkpoint still resumes; a resume with another
// batch size or dataset is refused naming the difference; a resume of a
// finished run keeps summary.json's final numbers.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "support/test_util.h"

using nlohmann::json;
using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

const std::map<std::string, std::string> kEnv = {{"OMP_NUM_THREADS", "1"}};

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ~16 KB of text: enough windows of 32 tokens for a few steps.
std::string corpus() {
  std::string text;
  std::mt19937 rng(3);
  const char* words[] = {"the ", "state ", "of ", "a ", "run ", "is ", "saved ", "and ", "checked. "};
  while (text.size() < 16000) text += words[rng() % 9];
  return text;
}

// The tiny model on short sequences, saving only at the end; micro-batch 2 unless `extra` sets it.
std::vector<std::string> train_args(const std::string& out, const std::string& data, int steps,
                                    std::vector<std::string> extra = {}) {
  if (std::find(extra.begin(), extra.end(), "--batch-size") == extra.end()) extra.insert(extra.end(), {"--batch-size", "2"});
  std::vector<std::string> a = {"train", "--device", "cpu", "--model", "tiny", "--seq-len", "32",
                                "--steps", std::to_string(steps), "--output-dir", out, "--dataset-file", data,
                                "--lr", "1e-3", "--seed", "3", "--save-every", "1000", "--eval-every", "1000"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

zinf::test::RunResult zinf_run(const std::vector<std::string>& args) { return run_zinf(args, kEnv); }

// A finished 3-step run (checkpoint global_step3 only) and its export, made once per test process.
struct Reference {
  TempDir dir{"zinf-cli-integrity"};
  std::string data = dir.file("corpus.txt");
  std::string run = dir.file("run");
  std::string model = dir.file("run/model/model.safetensors");
};

const Reference& reference() {
  static std::unique_ptr<Reference> ref;
  if (!ref) {
    ref = std::make_unique<Reference>();
    write_text(ref->data, corpus());
    const auto r = zinf_run(train_args(ref->run, ref->data, 3));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(read_text(ref->run + "/checkpoints/latest") == "global_step3");
  }
  return *ref;
}

// A fresh copy of the reference run's output directory.
std::string copy_of(const Reference& ref, const TempDir& dir, const std::string& name) {
  const std::string out = dir.file(name);
  std::filesystem::copy(ref.run, out, std::filesystem::copy_options::recursive);
  return out;
}

void flip_bit(const std::string& path, std::size_t at, int bit) {
  std::string bytes = read_text(path);
  REQUIRE(at < bytes.size());
  bytes[at] = char(bytes[at] ^ (1 << bit));
  write_text(path, bytes);
}

}  // namespace

TEST_CASE("zinf: single-bit flips anywhere in a checkpoint stop --resume and export with a clear message") {
  const Reference& ref = reference();
  TempDir dir;
  const std::string shard_rel = "/checkpoints/global_step3/state.rank0.safetensors";
  const std::string clean_shard = read_text(ref.run + shard_rel);
  std::uint64_t header = 0;
  std::memcpy(&header, clean_shard.data(), 8);
  const std::size_t data_start = 8 + std::size_t(header), tensor_bytes = (clean_shard.size() - data_start) / 3;
  // Flips 0-4 in the shard's data, 5-6 in its header, 7-8 in checkpoint.json, 9-10 in latest.
  std::mt19937_64 rng(20261202);
  for (int i = 0; i < 11; ++i) {
    const std::string out = copy_of(ref, dir, "flip" + std::to_string(i));
    std::string file;
    std::size_t at = 0;
    if (i < 5) {
      file = out + shard_rel;
      at = data_start + rng() % (clean_shard.size() - data_start);
    } else if (i < 7) {
      file = out + shard_rel;
      at = rng() % data_start;
    } else if (i < 9) {
      file = out + "/checkpoints/global_step3/checkpoint.json";
      at = rng() % read_text(file).size();
    } else {
      file = out + "/checkpoints/latest";
      at = rng() % read_text(file).size();
    }
    const int bit = int(rng() % 8);
    CAPTURE(file);
    CAPTURE(at);
    CAPTURE(bit);
    flip_bit(file, at, bit);
    const bool in_latest = i >= 9;
    const auto clear = [&](const std::string& err) {
      return in_latest ? has(err, out + "/checkpoints/latest'") : has(err, "error: corrupt checkpoint: ") && has(err, file);
    };

    const auto resumed = zinf_run(train_args(out, ref.data, 4, {"--resume"}));
    CAPTURE(resumed.err);
    CHECK(resumed.exit_code == 2);
    CHECK(clear(resumed.err));
    CHECK_FALSE(has(resumed.err, "diverged"));

    const std::string exported_dir = dir.file("model" + std::to_string(i));
    const auto exported = zinf_run({"export", out, exported_dir});
    CAPTURE(exported.err);
    // export reads the weights only: a flip in exp_avg or exp_avg_sq data may pass, with the clean weights.
    const bool in_moments = i < 5 && at >= data_start + tensor_bytes;
    if (in_moments && exported.exit_code == 0) {
      CHECK(read_text(exported_dir + "/model.safetensors") == read_text(ref.model));
    } else {
      CHECK(exported.exit_code == 2);
      CHECK(clear(exported.err));
      CHECK_FALSE(std::filesystem::exists(exported_dir));
    }
  }
}

TEST_CASE("zinf export onto its own checkpoint is refused, and the checkpoint still resumes") {
  const Reference& ref = reference();
  TempDir dir;
  const std::string out = copy_of(ref, dir, "run");
  const std::string shard = out + "/checkpoints/global_step3/state.rank0.safetensors";
  const std::string before = read_text(shard);
  std::filesystem::create_symlink(shard, dir.file("link.safetensors"));
  for (const std::string& target : {shard, out + "/checkpoints/global_step3/checkpoint.json",
                                    out + "/checkpoints/latest", dir.file("link.safetensors")}) {
    CAPTURE(target);
    const auto e = zinf_run({"export", out + "/checkpoints/global_step3", target});
    CHECK(e.exit_code == 2);
    CHECK(has(e.err, "'" + target + "' exists and is not a directory"));
  }
  for (const std::string& target : {out, out + "/checkpoints", out + "/checkpoints/global_step3"}) {
    CAPTURE(target);
    const auto e = zinf_run({"export", out + "/checkpoints/global_step3", target});
    CHECK(e.exit_code == 2);
    CHECK(has(e.err, "'" + target + "' already exists and is not empty"));
  }
  CHECK(read_text(shard) == before);
  const auto r = zinf_run(train_args(out, ref.data, 4, {"--resume"}));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(has(r.err, "resumed from " + out + "/checkpoints/global_step3"));
}

TEST_CASE("zinf train --resume with another batch size or dataset is refused, naming the difference") {
  const Reference& ref = reference();
  TempDir dir;
  const std::string out = copy_of(ref, dir, "run");

  auto r = zinf_run(train_args(out, ref.data, 4, {"--resume", "--batch-size", "4"}));
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "belongs to another run: global batch: the checkpoint's run had micro-batch 2 x grad-accum 1 x 1 "
                   "rank = 2 sequences per step, this run has micro-batch 4 x grad-accum 1 x 1 rank = 4"));
  // The same global batch in another split is the same run.
  r = zinf_run(train_args(out, ref.data, 4, {"--resume", "--batch-size", "1", "--grad-accum", "2"}));
  INFO(r.err);
  CHECK(r.exit_code == 0);

  std::string text = read_text(ref.data);
  text[text.size() / 2] = text[text.size() / 2] == 'a' ? 'b' : 'a';  // as many tokens, one different
  write_text(dir.file("edited.txt"), text);
  const std::string out2 = copy_of(ref, dir, "run2");
  r = zinf_run(train_args(out2, dir.file("edited.txt"), 4, {"--resume"}));
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "dataset: the checkpoint's ('" + ref.data + "') and this run's ('" + dir.file("edited.txt") +
                       "') both have " + std::to_string(text.size()) + " tokens, but other ones"));
  write_text(dir.file("short.txt"), text.substr(0, 12000));
  r = zinf_run(train_args(out2, dir.file("short.txt"), 4, {"--resume"}));
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "has " + std::to_string(text.size()) + " tokens, this run's ('" + dir.file("short.txt") +
                       "') 12000"));
}

TEST_CASE("zinf train --resume of a finished run says there is nothing to train and keeps summary.json") {
  const Reference& ref = reference();
  TempDir dir;
  const std::string out = copy_of(ref, dir, "run");
  const std::string summary = read_text(out + "/summary.json");
  const json before = json::parse(summary);
  REQUIRE(before["final_loss"].is_number());

  const auto r = zinf_run(train_args(out, ref.data, 3, {"--resume"}));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(has(r.err, "is at step 3 and --steps is 3: nothing to train"));
  CHECK(read_text(out + "/summary.json") == summary);
  CHECK(json::parse(r.out)["final_loss"] == before["final_loss"]);

  // Without its summary (killed after the last checkpoint): the final numbers come from metrics.jsonl.
  std::filesystem::remove(out + "/summary.json");
  const auto again = zinf_run(train_args(out, ref.data, 3, {"--resume"}));
  CHECK(again.exit_code == 0);
  const json rebuilt = json::parse(read_text(out + "/summary.json"));
  CHECK(rebuilt["final_loss"] == before["final_loss"]);
  CHECK(rebuilt["steps"] == 3);
}
