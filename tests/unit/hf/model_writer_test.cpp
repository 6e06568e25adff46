// Tests for zinf::hf::plan_shards / shard_index_json / write_model_dir: the
// shard plan follows transformers' rule on a small limit (names, members,
// sizes, index), the directory holds what the source streamed converted to
// each dtype, appears only when complete, and an existing directory, a file
// in the way, a short source or a full disk are clear errors that leave
// nothing behind.
#include "hf/model_writer.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "hf/dtype.h"
#include "hf/safetensors.h"
#include "support/test_util.h"

using namespace zinf;
using nlohmann::json;
namespace stdfs = std::filesystem;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Tensors of 10, 30, 100 (over the limit), 25, 40 and 5 F32 elements.
std::vector<hf::TensorSpec> six_tensors(const std::string& dtype = "F32") {
  return {{"a", dtype, {10}}, {"b", dtype, {3, 10}}, {"big", dtype, {10, 10}},
          {"c", dtype, {25}}, {"d", dtype, {4, 10}}, {"e", dtype, {5}}};
}

// Element j of tensor i: distinct, with fractions bf16 and f16 must round.
float value(std::size_t i, std::int64_t j) { return float(i) * 1000.0f + float(j) * 1.0009765625f + 0.0001f; }

hf::ModelDir model_dir(const std::vector<hf::TensorSpec>& tensors, std::int64_t max_bytes) {
  hf::ModelDir d;
  d.tensors = tensors;
  d.max_shard_bytes = max_bytes;
  d.files = {{"config.json", "{\"model_type\": \"test\"}\n"}};
  d.buffer_bytes = 16;  // many conversion pieces per tensor
  d.source = [tensors](std::size_t i, const hf::TensorSink& sink) {
    std::int64_t n = 1;
    for (auto s : tensors[i].shape) n *= s;
    // Backwards, 7 elements at a time: order and piece size are the caller's.
    for (std::int64_t end = n; end > 0; end -= 7) {
      const std::int64_t first = std::max<std::int64_t>(0, end - 7);
      std::vector<float> piece;
      for (std::int64_t j = first; j < end; ++j) piece.push_back(value(i, j));
      sink(first, end - first, piece.data());
    }
  };
  return d;
}

}  // namespace

TEST_CASE("shard plan: a tensor joins the shard unless it would pass the limit; a larger one is alone") {
  // Limit 200 bytes = 50 F32 elements: [a b] (160 B), big (400 B) alone, then
  // c (100 B) + d (160 B) would pass: [c], [d e].
  const hf::ShardPlan plan = hf::plan_shards(six_tensors(), 200);
  REQUIRE(plan.files.size() == 4);
  CHECK(plan.files[0] == "model-00001-of-00004.safetensors");
  CHECK(plan.files[3] == "model-00004-of-00004.safetensors");
  // huggingface_hub appends the oversized tensor's shard before the one being filled.
  CHECK(plan.tensors[0] == std::vector<std::size_t>{2});
  CHECK(plan.tensors[1] == std::vector<std::size_t>{0, 1});
  CHECK(plan.tensors[2] == std::vector<std::size_t>{3});
  CHECK(plan.tensors[3] == std::vector<std::size_t>{4, 5});
  CHECK(plan.total_bytes == (10 + 30 + 100 + 25 + 40 + 5) * 4);
  CHECK(plan.total_parameters == 210);
  CHECK(plan.sharded());

  const json index = json::parse(hf::shard_index_json(six_tensors(), plan));
  CHECK(index["metadata"]["total_size"] == 840);
  CHECK(index["metadata"]["total_parameters"] == 210);
  CHECK(index["weight_map"].size() == 6);
  CHECK(index["weight_map"]["big"] == "model-00001-of-00004.safetensors");
  CHECK(index["weight_map"]["a"] == "model-00002-of-00004.safetensors");
  CHECK(index["weight_map"]["b"] == "model-00002-of-00004.safetensors");
  CHECK(index["weight_map"]["c"] == "model-00003-of-00004.safetensors");
  CHECK(index["weight_map"]["e"] == "model-00004-of-00004.safetensors");

  // In BF16 the same tensors are half the bytes: big (200 B) is not over the
  // limit but does not fit beside [a b] (80 B); c (50 B) does not fit beside it.
  const hf::ShardPlan half = hf::plan_shards(six_tensors("BF16"), 200);
  REQUIRE(half.files.size() == 3);
  CHECK(half.tensors[0] == std::vector<std::size_t>{0, 1});
  CHECK(half.tensors[1] == std::vector<std::size_t>{2});
  CHECK(half.tensors[2] == std::vector<std::size_t>{3, 4, 5});
  CHECK(half.total_bytes == 420);

  const hf::ShardPlan one = hf::plan_shards(six_tensors(), 840);
  CHECK(one.files == std::vector<std::string>{"model.safetensors"});
  CHECK(!one.sharded());
  CHECK(one.tensors[0].size() == 6);
  CHECK(test::error_of([] { hf::plan_shards(six_tensors(), 0); }).find("positive") != std::string::npos);
}

TEST_CASE("model dir: sharded BF16 files hold the source's values rounded, the index names every tensor") {
  test::TempDir dir;
  const std::string out = dir.file("model");
  const hf::ShardPlan plan = hf::write_model_dir(out + "/", model_dir(six_tensors("BF16"), 200));
  CHECK(plan.files.size() == 3);
  CHECK(test::read_text(out + "/config.json") == "{\"model_type\": \"test\"}\n");
  const json index = json::parse(test::read_text(out + "/model.safetensors.index.json"));
  CHECK(index["metadata"]["total_size"] == 420);
  const auto tensors = six_tensors("BF16");
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    CAPTURE(tensors[i].name);
    const std::string file = index["weight_map"][tensors[i].name].get<std::string>();
    hf::SafetensorsReader r(out + "/" + file);
    CHECK(r.metadata().at("format") == "pt");
    const auto& e = r.entry(tensors[i].name);
    CHECK(e.dtype == "BF16");
    CHECK(e.shape == tensors[i].shape);
    std::vector<std::uint16_t> got(std::size_t(e.end - e.begin) / 2);
    r.read(tensors[i].name, got.data(), got.size() * 2);
    for (std::size_t j = 0; j < got.size(); ++j) CHECK(got[j] == hf::bf16_from_float(value(i, std::int64_t(j))));
  }
  const auto entries = std::distance(stdfs::directory_iterator(dir.path()), stdfs::directory_iterator());
  CHECK(entries == 1);  // no temporary directory left beside it
}

TEST_CASE("model dir: one shard is model.safetensors with no index; F32 values are exact") {
  test::TempDir dir;
  hf::write_model_dir(dir.file("m"), model_dir(six_tensors(), std::int64_t(1) << 20));
  CHECK(!stdfs::exists(dir.file("m/model.safetensors.index.json")));
  hf::SafetensorsReader r(dir.file("m/model.safetensors"));
  CHECK(r.tensors().size() == 6);
  std::vector<float> big(100);
  r.read("big", big.data(), 400);
  for (std::int64_t j = 0; j < 100; ++j) CHECK(big[std::size_t(j)] == value(2, j));
}

TEST_CASE("model dir: an existing non-empty directory or a file is refused, naming it; an empty one is used") {
  test::TempDir dir;
  stdfs::create_directories(dir.file("full"));
  test::write_text(dir.file("full/keep.txt"), "mine");
  const std::string msg = test::error_of([&] { hf::write_model_dir(dir.file("full"), model_dir(six_tensors(), 200)); });
  CHECK(has(msg, "'" + dir.file("full") + "' already exists and is not empty"));
  CHECK(test::read_text(dir.file("full/keep.txt")) == "mine");
  test::write_text(dir.file("afile"), "x");
  CHECK(has(test::error_of([&] { hf::write_model_dir(dir.file("afile"), model_dir(six_tensors(), 200)); }),
            "exists and is not a directory"));
  stdfs::create_directories(dir.file("empty"));
  hf::write_model_dir(dir.file("empty"), model_dir(six_tensors(), 200));
  CHECK(stdfs::exists(dir.file("empty/model-00004-of-00004.safetensors")));

  // replace: a run's own model directory is rewritten whole.
  hf::ModelDir again = model_dir(six_tensors(), std::int64_t(1) << 20);
  again.replace = true;
  hf::write_model_dir(dir.file("empty"), again);
  CHECK(stdfs::exists(dir.file("empty/model.safetensors")));
  CHECK(!stdfs::exists(dir.file("empty/model-00004-of-00004.safetensors")));
}

TEST_CASE("model dir: a source that streams too few elements fails and leaves no directory") {
  test::TempDir dir;
  hf::ModelDir d = model_dir(six_tensors(), 200);
  d.source = [](std::size_t, const hf::TensorSink& sink) {
    const float x[3] = {1, 2, 3};
    sink(0, 3, x);
  };
  CHECK(has(test::error_of([&] { hf::write_model_dir(dir.file("m"), d); }), "received 3 of its"));
  CHECK(stdfs::is_empty(dir.path()));
}

TEST_CASE("model dir: a full disk is an error naming the file, and nothing half-written stays") {
  test::TempDir dir;
  const std::string mnt = dir.file("small");
  stdfs::create_directories(mnt);
  test::ScopedMount mount(mnt, "tmpfs", "size=64k");
  if (!mount.ok()) {
    MESSAGE("skipped: cannot mount a tmpfs here");
    return;
  }
  std::vector<hf::TensorSpec> tensors = {{"w", "F32", {256, 256}}};  // 256 KiB > 64 KiB
  const std::string msg = test::error_of([&] { hf::write_model_dir(mnt + "/model", model_dir(tensors, 1 << 30)); });
  CHECK(has(msg, "cannot write '"));
  CHECK(has(msg, "free some space"));
  CHECK(stdfs::is_empty(mnt));
}
