// train: safetensors files parse back to the same bytes, bad files are
// refused with the sizes, and checkpoints are atomic, pruned and exportable.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <functional>

#include "core/error.h"
#include "core/fs.h"
#include "model/layout.h"
#include "support/test_util.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"

using namespace zinf;
using namespace zinf::train;

using zinf::test::error_of;

namespace {

std::vector<float> ramp(std::int64_t n, float start) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[i] = start + 0.5f * float(i);
  return v;
}

}  // namespace

TEST_CASE("a safetensors file parses back to the same tensors and metadata") {
  test::TempDir dir;
  const std::vector<float> a = ramp(6, 1);
  const std::vector<std::uint16_t> b = {1, 2, 3};
  write_safetensors(dir.file("x.safetensors"),
                    {{"a", "F32", {2, 3}, a.data(), 24}, {"b", "BF16", {3}, b.data(), 6}}, {{"k", "v"}});
  const std::string raw = test::read_text(dir.file("x.safetensors"));
  std::uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  CHECK(n % 8 == 0);
  CHECK(raw.size() == 8 + n + 30);
  CHECK(raw.substr(8, n).find("\"a\":{\"data_offsets\":[0,24],\"dtype\":\"F32\",\"shape\":[2,3]}") != std::string::npos);

  SafetensorsReader r(dir.file("x.safetensors"));
  CHECK(r.metadata().at("k") == "v");
  CHECK(r.entry("a").shape == std::vector<std::int64_t>{2, 3});
  CHECK(r.entry("b").dtype == "BF16");
  std::vector<float> back(6);
  r.read("a", back.data(), 24);
  CHECK(back == a);
  float two[2];
  r.read_range("a", 4, 2, two);
  CHECK(two[0] == a[4]);
  CHECK(two[1] == a[5]);
  CHECK(error_of([&] { r.entry("c"); }).find("no tensor named 'c'") != std::string::npos);
}

TEST_CASE("a truncated safetensors file is refused with the sizes") {
  test::TempDir dir;
  const std::vector<float> a = ramp(100, 0);
  write_safetensors(dir.file("x.safetensors"), {{"a", "F32", {100}, a.data(), 400}});
  const std::string raw = test::read_text(dir.file("x.safetensors"));
  test::write_text(dir.file("cut.safetensors"), raw.substr(0, raw.size() - 4));
  CHECK(error_of([&] { SafetensorsReader r(dir.file("cut.safetensors")); }).find("spans bytes [0, 400) of a 396-byte") !=
        std::string::npos);
  test::write_text(dir.file("tiny.safetensors"), "abc");
  CHECK(error_of([&] { SafetensorsReader r(dir.file("tiny.safetensors")); }).find("shorter than the 8-byte") !=
        std::string::npos);
  std::string huge = raw;
  huge[0] = '\xff';
  huge[1] = '\xff';
  test::write_text(dir.file("huge.safetensors"), huge);
  CHECK(error_of([&] { SafetensorsReader r(dir.file("huge.safetensors")); }).find("does not fit the file size") !=
        std::string::npos);
}

TEST_CASE("checkpoints rename into place, keep the newest N and name the latest") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 1, 2};
  const std::int64_t n = spec.parameter_count();
  const auto p = ramp(n, 1), m = ramp(n, 2), v = ramp(n, 3);
  CheckpointDir ckpt(dir.file("checkpoints"), 2);
  CHECK_FALSE(ckpt.latest().has_value());
  TrainerState st;
  st.seed = 7;
  st.dataset_tokens = 1000;
  for (std::int64_t step = 1; step <= 4; ++step) {
    st.step = step;
    st.adam_steps = step;
    st.data = {0, step * 3};
    ckpt.save(st, spec, {p.data(), m.data(), v.data(), n});
  }
  CHECK(test::read_text(dir.file("checkpoints/latest")) == "global_step4");
  CHECK_FALSE(fs::exists(dir.file("checkpoints/global_step2")));
  CHECK(fs::exists(dir.file("checkpoints/global_step3/state.safetensors")));
  CHECK(*ckpt.latest() == dir.file("checkpoints/global_step4"));

  // A killed save leaves a temporary directory: never the latest, removed on the next start.
  fs::make_dirs(dir.file("checkpoints/.tmp-global_step5.123"));
  CheckpointDir again(dir.file("checkpoints"), 2);
  CHECK_FALSE(fs::exists(dir.file("checkpoints/.tmp-global_step5.123")));
  CHECK(*again.latest() == dir.file("checkpoints/global_step4"));

  for (const std::string& where : {dir.path(), dir.file("checkpoints"), dir.file("checkpoints/global_step4")}) {
    const CheckpointInfo info = read_checkpoint_info(resolve_checkpoint(where));
    CHECK(info.state.step == 4);
    CHECK(info.state.data.position == 12);
    CHECK(info.state.seed == 7);
    CHECK(info.spec.hidden_size == 8);
    std::vector<float> back(static_cast<std::size_t>(n));
    read_checkpoint_tensors(info, nullptr, back.data(), nullptr);
    CHECK(back == m);
  }
  CHECK(error_of([&] { resolve_checkpoint(dir.file("nowhere")); }).find("is not a zinf checkpoint") != std::string::npos);
}

TEST_CASE("export writes every parameter under its nanoGPT name") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 2, 2};
  const std::int64_t n = spec.parameter_count();
  const auto p = ramp(n, -3);
  CheckpointDir ckpt(dir.file("out/checkpoints"), 2);
  TrainerState st;
  st.step = 3;
  ckpt.save(st, spec, {p.data(), p.data(), p.data(), n});
  CHECK(export_checkpoint(dir.file("out"), dir.file("model.safetensors")) == dir.file("out/checkpoints/global_step3"));
  SafetensorsReader r(dir.file("model.safetensors"));
  const auto layout = model::gpt_layout(spec);
  std::size_t count = 0;
  for (const auto& block : layout)
    for (const auto& param : block.params) {
      CAPTURE(param.name);
      const auto& e = r.entry(param.name);
      CHECK(e.shape == param.shape);
      std::vector<float> back(static_cast<std::size_t>(param.numel));
      r.read(param.name, back.data(), back.size() * 4);
      CHECK(std::equal(back.begin(), back.end(), p.begin() + param.offset));
      ++count;
    }
  CHECK(r.tensors().size() == count);
  CHECK(r.entry("transformer.h.1.mlp.c_fc.weight").shape == std::vector<std::int64_t>{32, 8});
}

TEST_CASE("a checkpoint of another format version is refused") {
  test::TempDir dir;
  const std::vector<float> a = ramp(4, 0);
  fs::make_dirs(dir.file("ck"));
  write_safetensors(dir.file("ck/state.safetensors"), {{"params", "F32", {4}, a.data(), 16}},
                    {{"format", "zinf-checkpoint"}, {"version", "99"}});
  CHECK(error_of([&] { read_checkpoint_info(dir.file("ck")); }).find("checkpoint version 99") != std::string::npos);
}
