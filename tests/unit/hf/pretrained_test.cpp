// Tests for zinf::hf::PretrainedWeights: single-file and sharded directories
// read by element range in fp32 (F32, BF16), GPT-2 Conv1D weights transposed,
// buffers and a tied head's copy skipped, and every mismatch refused by name
// (missing, unexpected, wrong shape, wrong dtype, missing shard, index that
// lies, no weights at all).
#include "hf/pretrained.h"

#include <doctest/doctest.h>

#include <cstdio>

#include "hf/dtype.h"
#include "hf/safetensors.h"
#include "support/test_util.h"

using namespace zinf::hf;
using zinf::test::error_of;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

struct Tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

void write_f32(const std::string& path, const std::vector<Tensor>& tensors) {
  std::vector<TensorView> views;
  for (const auto& t : tensors)
    views.push_back({t.name, "F32", t.shape, t.values.data(), t.values.size() * sizeof(float)});
  write_safetensors(path, views);
}

const Tensor kA{"model.a.weight", {2, 3}, {1, 2, 3, 4, 5, 6}};
const Tensor kB{"model.b.weight", {3}, {7, 8, 9}};
const std::vector<ExpectedTensor> kExpected{{"model.a.weight", {2, 3}}, {"model.b.weight", {3}}};

std::vector<float> read(const PretrainedWeights& w, std::size_t i, std::int64_t first, std::int64_t count) {
  std::vector<float> out(std::size_t(count), -1.0f);
  w.read(i, first, count, out.data());
  return out;
}

}  // namespace

TEST_CASE("pretrained weights: a single file reads any element range of each parameter") {
  TempDir dir;
  write_f32(dir.file("model.safetensors"), {kA, kB});
  const PretrainedWeights w(dir.path(), "llama", false, kExpected);
  CHECK(w.file_count() == 1);
  CHECK(read(w, 0, 0, 6) == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(read(w, 0, 2, 3) == std::vector<float>{3, 4, 5});
  CHECK(read(w, 1, 1, 2) == std::vector<float>{8, 9});
}

TEST_CASE("pretrained weights: BF16 tensors convert exactly to fp32") {
  TempDir dir;
  const std::vector<float> values{1.5f, -2.25f, 3.0e-3f, 65504.0f, 0.0f, -0.0f};
  std::vector<std::uint16_t> raw(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) raw[i] = bf16_from_float(values[i]);
  std::vector<TensorView> views{{"model.a.weight", "BF16", {2, 3}, raw.data(), raw.size() * 2},
                                {"model.b.weight", "F32", {3}, kB.values.data(), 12}};
  write_safetensors(dir.file("model.safetensors"), views);
  const PretrainedWeights w(dir.path(), "llama", false, kExpected);
  const std::vector<float> got = read(w, 0, 0, 6);
  for (std::size_t i = 0; i < values.size(); ++i) CHECK(got[i] == float_from_bf16(raw[i]));
  CHECK(got[0] == 1.5f);
  CHECK(got[1] == -2.25f);
}

TEST_CASE("pretrained weights: GPT-2 files without the transformer. prefix, Conv1D transposed, buffers skipped") {
  TempDir dir;
  // HF Conv1D stores [in, out] = [2, 3]; zinf wants [out, in] = [3, 2].
  const Tensor conv{"h.0.attn.c_attn.weight", {2, 3}, {1, 2, 3, 4, 5, 6}};
  const Tensor mask{"h.0.attn.bias", {1, 1, 2, 2}, {1, 0, 1, 1}};
  const Tensor head{"lm_head.weight", {3}, {0, 0, 0}};  // a tied head's copy of the embedding
  write_f32(dir.file("model.safetensors"), {conv, mask, head, {"wte.weight", {3}, {7, 8, 9}}});
  const PretrainedWeights w(dir.path(), "gpt2", true,
                            {{"transformer.h.0.attn.c_attn.weight", {3, 2}}, {"transformer.wte.weight", {3}}});
  CHECK(read(w, 0, 0, 6) == std::vector<float>{1, 4, 2, 5, 3, 6});
  CHECK(read(w, 0, 3, 2) == std::vector<float>{5, 3});
  CHECK(read(w, 1, 0, 3) == std::vector<float>{7, 8, 9});
}

TEST_CASE("pretrained weights: sharded directories follow the index") {
  TempDir dir;
  write_f32(dir.file("model-00001-of-00002.safetensors"), {kA});
  write_f32(dir.file("model-00002-of-00002.safetensors"), {kB});
  const std::string index = R"({"metadata": {"total_size": 36}, "weight_map": {
      "model.a.weight": "model-00001-of-00002.safetensors", "model.b.weight": "model-00002-of-00002.safetensors"}})";
  write_text(dir.file("model.safetensors.index.json"), index);
  const PretrainedWeights w(dir.path(), "llama", false, kExpected);
  CHECK(w.file_count() == 2);
  CHECK(read(w, 1, 0, 3) == std::vector<float>{7, 8, 9});

  std::remove(dir.file("model-00002-of-00002.safetensors").c_str());
  CHECK(error_of([&] { PretrainedWeights x(dir.path(), "llama", false, kExpected); }) ==
        dir.path() + "/model-00002-of-00002.safetensors is missing | hint: the model's files are incomplete; download it again");

  write_f32(dir.file("model-00002-of-00002.safetensors"), {{"model.c.weight", {3}, {1, 2, 3}}});
  CHECK(error_of([&] { PretrainedWeights x(dir.path(), "llama", false, kExpected); })
            .find("model.safetensors.index.json puts tensor 'model.b.weight' in model-00002-of-00002.safetensors, "
                  "which does not hold it") != std::string::npos);
  write_text(dir.file("model.safetensors.index.json"), R"({"metadata": {}})");
  CHECK(error_of([&] { PretrainedWeights x(dir.path(), "llama", false, kExpected); })
            .find("has no weight_map object") != std::string::npos);
}

TEST_CASE("pretrained weights: missing, unexpected, misshapen and mistyped tensors are named with their file") {
  TempDir dir;
  const std::string file = dir.file("model.safetensors");
  CHECK(error_of([&] { PretrainedWeights x(dir.path(), "llama", false, kExpected); })
            .find("has neither model.safetensors nor model.safetensors.index.json") != std::string::npos);

  write_f32(file, {kA});
  CHECK(error_of([&] { PretrainedWeights x(dir.path(), "llama", false, kExpected); })
            .find(dir.path() + " has no tensor 'model.b.weight' (shape [3])") == 0);

  write_f32(file, {kA, kB, {"model.extra.weight", {1}, {0}}});
  CHECK(error_of([&] { PretrainedWeights x(dir.path(), "llama", false, kExpected); })
            .find("tensor 'model.extra.weight' in " + file + " is not a parameter of the llama model") == 0);

  write_f32(file, {{"model.a.weight", {3, 2}, {1, 2, 3, 4, 5, 6}}, kB});
  CHECK(error_of([&] { PretrainedWeights x(dir.path(), "llama", false, kExpected); })
            .find("tensor 'model.a.weight' in " + file + " has shape [3, 2], the model expects [2, 3]") == 0);

  const std::vector<std::int64_t> ints{1, 2, 3};
  write_safetensors(file, {{"model.a.weight", "F32", {2, 3}, kA.values.data(), 24},
                           {"model.b.weight", "I64", {3}, ints.data(), 24}});
  CHECK(error_of([&] { PretrainedWeights x(dir.path(), "llama", false, kExpected); }).find("I64") != std::string::npos);
}
