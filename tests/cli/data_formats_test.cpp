// cli: `zinf train` on the token files people have (issue 17): llm.c uint16
// and uint32 files, a directory of shards read as one sequence, nanoGPT's
// header-less train.bin with --data-format nanogpt (and a hint naming it
// without), and clear errors for a bad format or an id beyond the vocabulary.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/test_util.h"

using nlohmann::json;
using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

const std::map<std::string, std::string> kEnv = {{"OMP_NUM_THREADS", "1"}};

// An llm.c token file: 256 x int32 header, then uint16 (magic 20240520, version 1)
// or uint32 (magic 20240801, version 7) tokens.
void write_llmc(const std::string& path, const std::vector<std::uint32_t>& ids, int width) {
  std::int32_t header[256] = {width == 2 ? 20240520 : 20240801, width == 2 ? 1 : 7, static_cast<std::int32_t>(ids.size())};
  std::string bytes(sizeof header + std::size_t(width) * ids.size(), '\0');
  std::memcpy(bytes.data(), header, sizeof header);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::uint16_t v16 = static_cast<std::uint16_t>(ids[i]);
    std::memcpy(bytes.data() + sizeof header + std::size_t(width) * i, width == 2 ? static_cast<const void*>(&v16)
                                                                                  : static_cast<const void*>(&ids[i]),
                std::size_t(width));
  }
  write_text(path, bytes);
}

// n ids with a simple repeating pattern below `vocab`.
std::vector<std::uint32_t> pattern(std::size_t n, std::uint32_t vocab, std::uint32_t salt) {
  std::vector<std::uint32_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint32_t>((i * 7 + salt) % 97 + (vocab - 97));
  return v;
}

std::vector<std::string> args(const std::string& data, const std::string& out, const std::string& vocab) {
  return {"train", "--device", "cpu", "--model", "tiny", "--seq-len", "32", "--batch-size", "2", "--steps", "3",
          "--vocab-size", vocab, "--dataset-file", data, "--output-dir", out, "--no-save"};
}

std::size_t steps_logged(const std::string& out) {
  std::istringstream in(read_text(out + "/metrics.jsonl"));
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && std::isfinite(json::parse(line)["loss"].get<double>())) ++n;
  return n;
}

}  // namespace

TEST_CASE("zinf train: a directory of llm.c shards, uint16 and uint32 (ids past 65535), trains as one dataset") {
  TempDir dir;
  std::filesystem::create_directories(dir.file("shards"));
  write_llmc(dir.file("shards/train_000.bin"), pattern(3000, 300, 1), 2);
  write_llmc(dir.file("shards/train_001.bin"), pattern(3000, 70000, 2), 4);
  const auto r = run_zinf(args(dir.file("shards"), dir.file("out"), "70000"), kEnv);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(steps_logged(dir.file("out")) == 3);
  const json cfg = json::parse(read_text(dir.file("out") + "/ds_config.json"));
  CHECK(cfg["zinf"]["data"]["format"] == "detect");

  // An id at or past the vocabulary is named before training starts.
  const auto small = run_zinf(args(dir.file("shards"), dir.file("small"), "60000"), kEnv);
  CHECK(small.exit_code == 2);
  CHECK(small.err.find("contains token id 69999") != std::string::npos);
}

TEST_CASE("zinf train: nanoGPT's header-less train.bin needs --data-format nanogpt, and the error says so") {
  TempDir dir;
  const std::vector<std::uint32_t> ids = pattern(4000, 256, 3);
  std::string raw(ids.size() * 2, '\0');
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto v = static_cast<std::uint16_t>(ids[i]);
    std::memcpy(raw.data() + 2 * i, &v, 2);
  }
  write_text(dir.file("train.bin"), raw);
  const auto refused = run_zinf(args(dir.file("train.bin"), dir.file("a"), "256"), kEnv);
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("--data-format nanogpt") != std::string::npos);

  auto ok_args = args(dir.file("train.bin"), dir.file("b"), "256");
  ok_args.insert(ok_args.end(), {"--data-format", "nanogpt"});
  const auto ok = run_zinf(ok_args, kEnv);
  INFO(ok.err);
  REQUIRE(ok.exit_code == 0);
  CHECK(steps_logged(dir.file("b")) == 3);

  auto bad = args(dir.file("train.bin"), dir.file("c"), "256");
  bad.insert(bad.end(), {"--data-format", "npy"});
  const auto wrong = run_zinf(bad, kEnv);
  CHECK(wrong.exit_code == 2);
  CHECK(wrong.err.find("zinf.data.format") != std::string::npos);
  CHECK(wrong.err.find("nanogpt") != std::string::npos);
}

TEST_CASE("zinf train: --val-dataset-file validates on its own data and all of --dataset-file trains") {
  TempDir dir;
  write_llmc(dir.file("train.bin"), pattern(3000, 300, 1), 2);
  write_llmc(dir.file("val.bin"), pattern(500, 300, 5), 2);
  auto a = args(dir.file("train.bin"), dir.file("out"), "300");
  a.insert(a.end(), {"--val-dataset-file", dir.file("val.bin")});
  const auto r = run_zinf(a, kEnv);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json summary = json::parse(read_text(dir.file("out") + "/summary.json"));
  CHECK(std::isfinite(summary["final_val_loss"].get<double>()));
  const json cfg = json::parse(read_text(dir.file("out") + "/ds_config.json"));
  CHECK(cfg["zinf"]["data"]["val_dataset_file"] == dir.file("val.bin"));

  // Too short for one validation sample: named, before training.
  write_llmc(dir.file("tiny.bin"), pattern(10, 300, 5), 2);
  a = args(dir.file("train.bin"), dir.file("out2"), "300");
  a.insert(a.end(), {"--val-dataset-file", dir.file("tiny.bin")});
  const auto short_val = run_zinf(a, kEnv);
  CHECK(short_val.exit_code == 2);
  CHECK(short_val.err.find(dir.file("tiny.bin")) != std::string::npos);
}
