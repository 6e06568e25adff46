// train: safetensors files parse back to the same bytes (also when streamed
// in pieces out of order), bad files are refused with the sizes; checkpoints
// are atomic, pruned, sharded by rank, readable on any world size, refused
// with the file and rank when a shard is missing or cut, and exportable;
// version-1 single-file checkpoints still load. Integrity: a bit flip in any
// tensor's data, any header byte or checkpoint.json is a corrupt checkpoint
// naming the file (and tensor and chunk); range reads of any world size
// verify the chunks they touch; NaN/Inf is corrupt, not a divergence; a
// garbage `latest` is quoted, not dumped; export (a Hugging Face model
// directory: GPT-2 Conv1D weights transposed, BF16 rounded as hf::dtype
// does, the training precision by default) refuses to overwrite its inputs
// or any non-empty directory and a failing export leaves nothing;
// resume_mismatches names a changed dataset or global batch and allows
// another world size.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "model/layout.h"
#include "support/test_util.h"
#include "train/checkpoint.h"
#include "hf/dtype.h"
#include "hf/hf_config.h"
#include "hf/names.h"
#include "hf/pretrained.h"
#include "hf/safetensors.h"

using namespace zinf;
using namespace zinf::train;
using namespace zinf::hf;

using zinf::test::error_of;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<float> ramp(std::int64_t n, float start) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[i] = start + 0.5f * float(i);
  return v;
}

// The whole flat state held in memory (what a test "rank" owns a part of).
struct FullState {
  std::vector<float> p, m, v;
  explicit FullState(std::int64_t n) : p(ramp(n, 1)), m(ramp(n, -2)), v(ramp(n, 3)) {}
};

// A rank's shard of `full`: `ranges`, streamed in pieces of at most `piece`
// elements (as the engine streams sub-groups).
ShardContent shard_of(const FullState& full, std::vector<FlatRange> ranges, std::int64_t piece) {
  ShardContent s;
  s.ranges = ranges;
  s.stream = [&full, ranges, piece](const StateSink& sink) {
    for (const FlatRange& r : ranges)
      for (std::int64_t b = r.begin; b < r.end(); b += piece) {
        const FlatRange part{b, std::min(piece, r.end() - b)};
        sink(part, full.p.data() + b, full.m.data() + b, full.v.data() + b);
      }
  };
  return s;
}

ShardContent everything(const FullState& full) {
  return shard_of(full, {{0, std::int64_t(full.p.size())}}, std::int64_t(full.p.size()));
}

// std::barrier for C++17: `count` threads wait until all arrived.
class ThreadBarrier {
 public:
  explicit ThreadBarrier(int count) : count_(count) {}
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const int gen = generation_;
    if (++arrived_ == count_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen != generation_; });
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_, arrived_ = 0, generation_ = 0;
};

// Saves one checkpoint at `step` from `ranks.size()` threads, rank r owning
// ranks[r], with a CRC32C per `chunk_bytes`.
void save_from_ranks(const std::string& dir, const ModelSpec& spec, const FullState& full, std::int64_t step,
                     const std::vector<std::vector<FlatRange>>& ranks, std::int64_t piece,
                     std::int64_t chunk_bytes = kChecksumChunkBytes) {
  const int world = int(ranks.size());
  ThreadBarrier barrier(world);
  std::vector<std::string> errors(ranks.size());
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        CheckpointDir ckpt(dir, 2, CheckpointGroup{r, world, [&] { barrier.wait(); }}, chunk_bytes);
        TrainerState st;
        st.step = step;
        st.adam_steps = step;
        st.seed = 7;
        ckpt.save(st, spec, shard_of(full, ranks[std::size_t(r)], piece));
      } catch (const std::exception& e) {
        errors[std::size_t(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) CHECK_MESSAGE(errors[std::size_t(r)].empty(), "rank ", r, ": ", errors[std::size_t(r)]);
}

// Reads [begin, begin + count) of all three tensors and compares with `full`.
bool reads_back(const CheckpointReader& reader, const FullState& full, std::int64_t begin, std::int64_t count) {
  std::vector<float> p(static_cast<std::size_t>(count)), m(p.size()), v(p.size());
  reader.read({begin, count}, p.data(), m.data(), v.data());
  return std::equal(p.begin(), p.end(), full.p.begin() + begin) && std::equal(m.begin(), m.end(), full.m.begin() + begin) &&
         std::equal(v.begin(), v.end(), full.v.begin() + begin);
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

TEST_CASE("a safetensors file streamed in pieces, out of order, equals the one written at once") {
  test::TempDir dir;
  const std::vector<float> a = ramp(10, 1), b = ramp(4, -7);
  write_safetensors(dir.file("once.safetensors"), {{"a", "F32", {10}, a.data(), 40}, {"b", "F32", {2, 2}, b.data(), 16}},
                    {{"k", "v"}});
  {
    SafetensorsWriter w(dir.file("pieces.safetensors"), {{"a", "F32", {10}}, {"b", "F32", {2, 2}}}, {{"k", "v"}});
    CHECK(w.data_offset(1) == 40);
    CHECK(w.data_bytes() == 56);
    w.write(w.data_offset(1), b.data(), 16);
    w.write(24, a.data() + 6, 16);
    w.write(0, a.data(), 24);
    CHECK_FALSE(fs::exists(dir.file("pieces.safetensors")));  // only the temporary name until commit
    w.commit();
  }
  CHECK(test::read_text(dir.file("pieces.safetensors")) == test::read_text(dir.file("once.safetensors")));

  // Missing bytes: commit refuses and nothing appears under the final name.
  {
    SafetensorsWriter w(dir.file("short.safetensors"), {{"a", "F32", {10}}});
    w.write(0, a.data(), 36);
    CHECK(error_of([&] { w.commit(); }).find("got 36 of its 40 data bytes") != std::string::npos);
    CHECK(error_of([&] { w.write(36, a.data(), 8); }).find("outside the 40-byte data section") != std::string::npos);
  }
  // Abandoned without commit (an exception on the way): no file, no temporary left.
  { SafetensorsWriter w(dir.file("abandoned.safetensors"), {{"a", "F32", {10}}}); }
  CHECK_FALSE(fs::exists(dir.file("short.safetensors")));
  CHECK_FALSE(fs::exists(dir.file("abandoned.safetensors")));
  std::size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) entries += !e.path().empty();
  CHECK(entries == 2);  // once + pieces
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
  const FullState full(n);
  CheckpointDir ckpt(dir.file("checkpoints"), 2);
  CHECK_FALSE(ckpt.latest().has_value());
  TrainerState st;
  st.seed = 7;
  st.dataset_tokens = 1000;
  for (std::int64_t step = 1; step <= 4; ++step) {
    st.step = step;
    st.adam_steps = step;
    st.data = {0, step * 3};
    ckpt.save(st, spec, everything(full));
  }
  CHECK(test::read_text(dir.file("checkpoints/latest")) == "global_step4");
  CHECK_FALSE(fs::exists(dir.file("checkpoints/global_step2")));
  CHECK(fs::exists(dir.file("checkpoints/global_step3/state.rank0.safetensors")));
  CHECK(fs::exists(dir.file("checkpoints/global_step3/checkpoint.json")));
  CHECK(*ckpt.latest() == dir.file("checkpoints/global_step4"));

  // A killed save leaves a temporary directory: never the latest, removed on the next start.
  fs::make_dirs(dir.file("checkpoints/.tmp-global_step5"));
  CheckpointDir again(dir.file("checkpoints"), 2);
  CHECK_FALSE(fs::exists(dir.file("checkpoints/.tmp-global_step5")));
  CHECK(*again.latest() == dir.file("checkpoints/global_step4"));

  for (const std::string& where : {dir.path(), dir.file("checkpoints"), dir.file("checkpoints/global_step4")}) {
    const CheckpointReader reader(resolve_checkpoint(where));
    const CheckpointInfo& info = reader.info();
    CHECK(info.version == 3);
    CHECK(info.world_size == 1);
    CHECK(info.state.step == 4);
    CHECK(info.state.data.position == 12);
    CHECK(info.state.seed == 7);
    CHECK(info.spec.hidden_size == 8);
    std::vector<float> back(static_cast<std::size_t>(n));
    reader.read({0, n}, nullptr, back.data(), nullptr);
    CHECK(back == full.m);
  }
  CHECK(error_of([&] { resolve_checkpoint(dir.file("nowhere")); }).find("is not a zinf checkpoint") != std::string::npos);
}

TEST_CASE("a save killed before checkpoint.json leaves latest at the last complete checkpoint") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 1, 2};
  const FullState full(spec.parameter_count());
  CheckpointDir ckpt(dir.file("checkpoints"), 5);
  TrainerState st;
  st.step = 1;
  ckpt.save(st, spec, everything(full));
  // Shards of step 2 on disk but no checkpoint.json: what a kill after the
  // shard barrier leaves (here a stream that dies in the middle of rank 0's shard).
  st.step = 2;
  ShardContent dying = everything(full);
  dying.stream = [&](const StateSink& sink) {
    sink({0, 10}, full.p.data(), full.m.data(), full.v.data());
    throw Error("killed");
  };
  CHECK(error_of([&] { ckpt.save(st, spec, dying); }).find("killed") != std::string::npos);
  CHECK(*ckpt.latest() == dir.file("checkpoints/global_step1"));
  CHECK_FALSE(fs::exists(dir.file("checkpoints/global_step2")));
  CHECK_FALSE(fs::exists(dir.file("checkpoints/.tmp-global_step2/state.rank0.safetensors")));  // the temporary name only
  CHECK(CheckpointReader(*ckpt.latest()).info().state.step == 1);
}

TEST_CASE("two ranks save one checkpoint; any range reads back from either shard, and export gathers them") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 2, 2};
  const std::int64_t n = spec.parameter_count();
  const FullState full(n);
  // Rank 0 owns two runs of the vector, rank 1 the two between and after
  // them (as an engine's per-block partitions would); pieces of 7 elements
  // cross the runs' ends.
  const std::vector<std::vector<FlatRange>> ranks = {{{0, 100}, {250, 150}}, {{100, 150}, {400, n - 400}}};
  save_from_ranks(dir.file("out/checkpoints"), spec, full, 3, ranks, 7);
  const std::string ck = dir.file("out/checkpoints/global_step3");
  CHECK(test::read_text(dir.file("out/checkpoints/latest")) == "global_step3");
  CHECK(fs::exists(ck + "/state.rank0.safetensors"));
  CHECK(fs::exists(ck + "/state.rank1.safetensors"));

  // Each shard records its ranges and holds exactly their elements.
  SafetensorsReader r1(ck + "/state.rank1.safetensors");
  CHECK(r1.metadata().at("ranges") == "[[100,150],[400," + std::to_string(n - 400) + "]]");
  CHECK(r1.metadata().at("rank") == "1");
  CHECK(r1.metadata().at("world_size") == "2");
  CHECK(r1.entry("exp_avg").shape == std::vector<std::int64_t>{150 + n - 400});

  const CheckpointReader reader(ck);
  CHECK(reader.info().world_size == 2);
  CHECK(reader.info().numel == n);
  CHECK(reads_back(reader, full, 0, n));        // the whole vector (a resume on one rank)
  CHECK(reads_back(reader, full, 95, 310));     // across three shard boundaries
  CHECK(reads_back(reader, full, n / 2, n - n / 2));  // the second half (rank 1 of 2 with another split)
  CHECK(reads_back(reader, full, 250, 1));
  float one = 0;
  reader.source()({399, 1}, nullptr, nullptr, &one);
  CHECK(one == full.v[399]);
  CHECK(error_of([&] { reader.read({n - 1, 2}, &one, nullptr, nullptr); }).find("outside checkpoint") != std::string::npos);

  // export: the same bytes as a model written from the full vector in pieces
  // of 33 elements (tiles of 4 rows of the transposed Conv1D weights).
  export_checkpoint(dir.file("out"), dir.file("exported"));
  write_hf_model(dir.file("direct"), spec, hf::Dtype::kF32, {}, [&](const FlatRange& r, float* dst) {
    std::copy(full.p.begin() + r.begin, full.p.begin() + r.end(), dst);
  }, /*chunk=*/33);
  for (const char* file : {"model.safetensors", "config.json"})
    CHECK(test::read_text(dir.file(std::string("exported/") + file)) ==
          test::read_text(dir.file(std::string("direct/") + file)));
}

TEST_CASE("a checkpoint with a missing, truncated or mismatched shard is refused naming the file and the rank") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 1, 2};
  const std::int64_t n = spec.parameter_count();
  const FullState full(n);
  save_from_ranks(dir.file("checkpoints"), spec, full, 5, {{{0, n / 2}}, {{n / 2, n - n / 2}}}, 64);
  const std::string ck = dir.file("checkpoints/global_step5");
  const std::string shard1 = ck + "/state.rank1.safetensors";
  const std::string bytes = test::read_text(shard1);

  test::write_text(shard1, bytes.substr(0, bytes.size() - 100));
  std::string msg = error_of([&] { CheckpointReader r(ck); });
  CHECK(msg.find("rank 1 of 2") != std::string::npos);
  CHECK(msg.find(shard1) != std::string::npos);
  CHECK(msg.find("data section") != std::string::npos);  // the sizes that do not fit

  fs::remove_all(shard1);
  msg = error_of([&] { CheckpointReader r(ck); });
  CHECK(msg.find("lacks the shard file of rank 1 of 2") != std::string::npos);
  CHECK(msg.find(shard1 + "' does not exist") != std::string::npos);
  CHECK(msg.find("hint: the checkpoint is incomplete") != std::string::npos);
  CHECK(error_of([&] { export_checkpoint(dir.path(), dir.file("x")); }).find("rank 1") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.file("x")));

  // A shard from another step (copied in by hand) is not silently mixed in.
  test::write_text(shard1, bytes);
  save_from_ranks(dir.file("other"), spec, full, 6, {{{0, n / 2}}, {{n / 2, n - n / 2}}}, 64);
  test::write_text(shard1, test::read_text(dir.file("other/global_step6/state.rank1.safetensors")));
  msg = error_of([&] { CheckpointReader r(ck); });
  CHECK(msg.find("is the version '3' shard of rank 1 of 2 at step 6") != std::string::npos);
  CHECK(msg.find("expects version 3, rank 1 of 2 at step 5") != std::string::npos);

  // Shards whose ranges leave a gap.
  save_from_ranks(dir.file("gap"), spec, full, 1, {{{0, 10}}, {{20, n - 20}}}, 64);
  CHECK(error_of([&] { CheckpointReader r(dir.file("gap/global_step1")); }).find("leave elements [10, 20) unowned") !=
        std::string::npos);
}

TEST_CASE("a version-1 checkpoint (one state.safetensors) still resumes and exports") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 1, 2};
  const std::int64_t n = spec.parameter_count();
  const FullState full(n);
  fs::make_dirs(dir.file("checkpoints/global_step9"));
  const std::size_t bytes = std::size_t(n) * 4;
  write_safetensors(dir.file("checkpoints/global_step9/state.safetensors"),
                    {{"params", "F32", {n}, full.p.data(), bytes},
                     {"exp_avg", "F32", {n}, full.m.data(), bytes},
                     {"exp_avg_sq", "F32", {n}, full.v.data(), bytes}},
                    {{"format", "zinf-checkpoint"},
                     {"version", "1"},
                     {"model", R"({"name":"custom","vocab_size":16,"seq_len":4,"hidden_size":8,"layers":1,"heads":2})"},
                     {"state", R"({"step":9,"adam_steps":8,"dataset_tokens":500,"tokens_seen":72,"seed":3,)"
                               R"("data":{"epoch":1,"position":4}})"}});
  test::write_text(dir.file("checkpoints/latest"), "global_step9");
  CheckpointDir ckpt(dir.file("checkpoints"), 2);
  CHECK(*ckpt.latest() == dir.file("checkpoints/global_step9"));
  const CheckpointReader reader(*ckpt.latest());
  CHECK(reader.info().version == 1);
  CHECK(reader.info().state.adam_steps == 8);
  CHECK(reader.info().state.data.epoch == 1);
  CHECK(reads_back(reader, full, 0, n));
  CHECK(reads_back(reader, full, 17, 40));
  CHECK(export_checkpoint(dir.path(), dir.file("model")) == dir.file("checkpoints/global_step9"));
  CHECK(has(test::read_text(dir.file("model/config.json")), "\"torch_dtype\": \"float32\""));  // unrecorded: fp32
  SafetensorsReader model(dir.file("model/model.safetensors"));
  std::vector<float> wte(16 * 8);
  model.read("transformer.wte.weight", wte.data(), wte.size() * 4);
  CHECK(std::equal(wte.begin(), wte.end(), full.p.begin()));
}

namespace {

// The exported tensor `name` of `out_dir` (any shard) as fp32, and its shape.
std::vector<float> exported(const std::string& out_dir, const std::string& name, std::vector<std::int64_t>* shape) {
  std::string file = out_dir + "/model.safetensors";
  if (!fs::exists(file)) {
    const std::string index = test::read_text(out_dir + "/model.safetensors.index.json");
    const std::string key = "\"" + name + "\": \"";
    const std::size_t at = index.find(key);
    REQUIRE(at != std::string::npos);
    file = out_dir + "/" + index.substr(at + key.size(), index.find('"', at + key.size()) - at - key.size());
  }
  SafetensorsReader r(file);
  const auto& e = r.entry(name);
  if (shape) *shape = e.shape;
  const hf::Dtype dt = hf::dtype_of(e.dtype, name);
  std::vector<char> raw(std::size_t(e.end - e.begin));
  r.read(name, raw.data(), raw.size());
  std::vector<float> out(raw.size() / hf::element_bytes(dt));
  hf::to_float(dt, raw.data(), out.data(), out.size());
  return out;
}

// Checks every parameter of `spec` in the exported `out_dir` against the
// master weights `p`: the same values (converted to `dtype` as hf::dtype
// does), GPT-2 Conv1D weights [in, out], no tied head. Returns the tensors seen.
std::size_t check_export(const std::string& out_dir, const ModelSpec& spec, const std::vector<float>& p,
                         hf::Dtype dtype) {
  std::size_t count = 0;
  for (const auto& block : model::model_layout(spec))
    for (const auto& param : block.params) {
      CAPTURE(param.name);
      std::vector<std::int64_t> shape;
      const std::vector<float> back = exported(out_dir, param.name, &shape);
      const bool t = spec.model_type == "gpt2" && hf::gpt2_is_conv1d_weight(param.name);
      CHECK(shape == (t ? std::vector<std::int64_t>{param.shape[1], param.shape[0]} : param.shape));
      REQUIRE(std::int64_t(back.size()) == param.numel);
      const std::int64_t rows = param.shape[0], cols = param.numel / rows;
      bool same = true;
      for (std::int64_t j = 0; j < param.numel; ++j) {
        // Element j of zinf's [rows, cols] sits at (j % cols) * rows + j / cols of HF's [cols, rows].
        const float want = p[std::size_t(param.offset + j)];
        const float got = back[std::size_t(t ? (j % cols) * rows + j / cols : j)];
        std::uint32_t a = 0, b = 0;
        float rounded = want;
        if (dtype == hf::Dtype::kBF16) rounded = hf::float_from_bf16(hf::bf16_from_float(want));
        if (dtype == hf::Dtype::kF16) rounded = hf::float_from_f16(hf::f16_from_float(want));
        std::memcpy(&a, &rounded, 4);
        std::memcpy(&b, &got, 4);
        same = same && a == b;  // bit for bit
      }
      CHECK(same);
      ++count;
    }
  return count;
}

}  // namespace

TEST_CASE("export writes every parameter under its HF name, GPT-2 Conv1D weights [in, out], bit for bit") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 2, 2};
  const std::int64_t n = spec.parameter_count();
  FullState full(n);
  for (std::int64_t i = 0; i < n; ++i) full.p[std::size_t(i)] = 0.001f * float(i) + 1.0f / 3.0f;  // bf16 must round
  CheckpointDir ckpt(dir.file("out/checkpoints"), 2);
  TrainerState st;
  st.step = 3;
  st.precision = "bf16";
  ckpt.save(st, spec, everything(full));
  CHECK(read_checkpoint_info(resolve_checkpoint(dir.file("out"))).state.precision == "bf16");

  ExportOptions fp32;
  fp32.dtype = "fp32";
  CHECK(export_checkpoint(dir.file("out"), dir.file("f32"), fp32) == dir.file("out/checkpoints/global_step3"));
  SafetensorsReader r(dir.file("f32/model.safetensors"));
  CHECK(check_export(dir.file("f32"), spec, full.p, hf::Dtype::kF32) == r.tensors().size());
  CHECK(r.entry("transformer.h.1.mlp.c_fc.weight").shape == std::vector<std::int64_t>{8, 32});
  CHECK(r.entry("transformer.h.1.attn.c_attn.weight").shape == std::vector<std::int64_t>{8, 24});
  CHECK_FALSE(r.tensors().count("lm_head.weight"));
  CHECK(has(test::read_text(dir.file("f32/config.json")), "\"GPT2LMHeadModel\""));

  // Default: the training precision (bf16), rounded as hf::dtype rounds; small shards.
  ExportOptions sharded;
  sharded.max_shard_bytes = 200;
  export_checkpoint(dir.file("out"), dir.file("bf16"), sharded);
  CHECK(fs::exists(dir.file("bf16/model.safetensors.index.json")));
  CHECK_FALSE(fs::exists(dir.file("bf16/model.safetensors")));
  CHECK(has(test::read_text(dir.file("bf16/config.json")), "\"torch_dtype\": \"bfloat16\""));
  CHECK(check_export(dir.file("bf16"), spec, full.p, hf::Dtype::kBF16) == r.tensors().size());

  CHECK(has(error_of([&] { ExportOptions o; o.dtype = "int8"; export_checkpoint(dir.file("out"), dir.file("x"), o); }),
            "dtype 'int8' is not supported for an exported model | hint: use one of: bf16, fp16, fp32"));
}

TEST_CASE("export then import is bit-exact: config.json gives the spec back, PretrainedWeights the master weights") {
  ModelSpec llama{"custom", 32, 8, 16, 2, 4};
  llama.model_type = "llama";
  llama.kv_heads = 2;
  llama.intermediate_size = 24;
  llama.max_positions = 8;
  llama.tied_embeddings = false;
  llama.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 4};
  llama.bos_token_id = 1;
  llama.eos_token_id = 2;
  ModelSpec qwen = llama;
  qwen.model_type = "qwen2";
  qwen.attention_bias = true;
  qwen.tied_embeddings = true;
  qwen.rope_scaling = {};
  ModelSpec gpt2{"custom", 16, 4, 8, 2, 2};
  gpt2.max_positions = 4;
  for (const ModelSpec& spec : {gpt2, llama, qwen}) {
    CAPTURE(spec.model_type);
    test::TempDir dir;
    const std::int64_t n = spec.parameter_count();
    FullState full(n);
    for (std::int64_t i = 0; i < n; ++i) full.p[std::size_t(i)] = std::sin(0.37f * float(i)) / 3.0f;
    CheckpointDir ckpt(dir.file("checkpoints"), 2);
    TrainerState st;
    st.step = 1;
    ckpt.save(st, spec, everything(full));
    ExportOptions o;
    o.max_shard_bytes = 500;  // sharded: the importer follows the index
    export_checkpoint(dir.path(), dir.file("m"), o);

    ModelSpec back = hf::read_hf_config(dir.file("m"));
    back.name = spec.name;
    back.seq_len = spec.seq_len;  // the config holds the position count, the run narrows it
    CHECK(back.parameter_count() == n);
    CHECK(back.kv_head_count() == spec.kv_head_count());
    CHECK(back.tied_embeddings == spec.tied_embeddings);
    CHECK(back.attention_bias == spec.attention_bias);
    CHECK(back.rope_scaling.type == spec.rope_scaling.type);
    CHECK(back.bos_token_id == spec.bos_token_id);
    std::vector<hf::ExpectedTensor> expected;
    std::vector<model::ParamInfo> params;
    for (const auto& block : model::model_layout(back))
      for (const auto& p : block.params) {
        expected.push_back({p.name, p.shape});
        params.push_back(p);
      }
    const hf::PretrainedWeights weights(dir.file("m"), back.model_type, back.tied_embeddings, expected);
    CHECK(weights.file_count() > 1);
    std::vector<float> flat(std::size_t(n), -1.0f);
    for (std::size_t i = 0; i < params.size(); ++i)
      weights.read(i, 0, params[i].numel, flat.data() + params[i].offset);
    CHECK(std::memcmp(flat.data(), full.p.data(), flat.size() * 4) == 0);
  }
}

TEST_CASE("export of a Llama-family checkpoint: HF names, untied head written, fp16 rounded") {
  test::TempDir dir;
  ModelSpec spec{"custom", 32, 8, 16, 2, 4};
  spec.model_type = "llama";
  spec.kv_heads = 2;
  spec.intermediate_size = 24;
  spec.tied_embeddings = false;
  const std::int64_t n = spec.parameter_count();
  const FullState full(n);
  CheckpointDir ckpt(dir.file("checkpoints"), 2);
  TrainerState st;
  st.step = 2;
  st.precision = "fp16";
  ckpt.save(st, spec, everything(full));
  export_checkpoint(dir.path(), dir.file("m"));
  SafetensorsReader r(dir.file("m/model.safetensors"));
  CHECK(r.entry("model.layers.1.self_attn.k_proj.weight").shape == std::vector<std::int64_t>{8, 16});
  CHECK(r.entry("model.layers.0.mlp.down_proj.weight").shape == std::vector<std::int64_t>{16, 24});
  CHECK(r.entry("lm_head.weight").dtype == "F16");
  CHECK(check_export(dir.file("m"), spec, full.p, hf::Dtype::kF16) == r.tensors().size());
}

TEST_CASE("a checkpoint of another format version is refused") {
  test::TempDir dir;
  const std::vector<float> a = ramp(4, 0);
  fs::make_dirs(dir.file("ck"));
  write_safetensors(dir.file("ck/state.safetensors"), {{"params", "F32", {4}, a.data(), 16}},
                    {{"format", "zinf-checkpoint"}, {"version", "99"}});
  CHECK(error_of([&] { read_checkpoint_info(dir.file("ck")); }).find("checkpoint version '99'") != std::string::npos);
  fs::make_dirs(dir.file("ck2"));
  test::write_text(dir.file("ck2/checkpoint.json"), R"({"format":"zinf-checkpoint","version":7})");
  CHECK(error_of([&] { read_checkpoint_info(dir.file("ck2")); }).find("is checkpoint version 7, this build reads versions 1 to 3") !=
        std::string::npos);
}

// ------------------------------------------------------------ integrity

namespace {

// Flips bit `bit` of byte `at` of `path` in place.
void flip_bit(const std::string& path, std::size_t at, int bit) {
  std::string bytes = test::read_text(path);
  REQUIRE(at < bytes.size());
  bytes[at] = char(bytes[at] ^ (1 << bit));
  test::write_text(path, bytes);
}

// Bytes before a safetensors file's data section (8 + header length).
std::size_t data_start(const std::string& path) {
  const std::string raw = test::read_text(path);
  std::uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  return std::size_t(8 + n);
}

// Opens `dir` and reads all of its state: what a resume does.
void read_everything(const std::string& dir) {
  const CheckpointReader reader(dir);
  const std::int64_t n = reader.info().numel;
  std::vector<float> p(static_cast<std::size_t>(n)), m(p.size()), v(p.size());
  reader.read({0, n}, p.data(), m.data(), v.data());
}

constexpr std::int64_t kSmallChunk = 64;  // bytes per CRC in these tests: 16 floats

}  // namespace

TEST_CASE("a bit flip in any tensor's data or in a shard's header is a corrupt checkpoint naming the file and tensor") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 1, 2};
  const std::int64_t n = spec.parameter_count();
  const FullState full(n);
  // Pieces of 7 elements: chunks are summed across pieces.
  save_from_ranks(dir.file("checkpoints"), spec, full, 4, {{{0, n / 2}}, {{n / 2, n - n / 2}}}, 7, kSmallChunk);
  const std::string ck = dir.file("checkpoints/global_step4");
  read_everything(ck);  // intact: reads back
  CHECK(reads_back(CheckpointReader(ck), full, 0, n));

  for (int rank = 0; rank < 2; ++rank) {
    const std::string file = ck + "/" + shard_file_name(rank);
    const std::string clean = test::read_text(file);
    const std::size_t start = data_start(file);
    SafetensorsReader st(file);
    CHECK(st.metadata().at("crc32c_chunk_bytes") == "64");
    const std::int64_t tensor_bytes = st.entry("params").end;
    for (const char* name : {"params", "exp_avg", "exp_avg_sq"}) {
      // One flip in each chunk's first, middle and last byte.
      for (std::int64_t at = 0; at < tensor_bytes; at += 29) {
        CAPTURE(rank);
        CAPTURE(name);
        CAPTURE(at);
        flip_bit(file, start + std::size_t(st.entry(name).begin + at), int(at % 8));
        const std::string msg = error_of([&] { read_everything(ck); });
        CHECK(has(msg, "corrupt checkpoint: '" + file + "' tensor '" + name + "' does not match its checksum in chunk " +
                           std::to_string(at / kSmallChunk) + " (bytes [" + std::to_string(at / kSmallChunk * 64)));
        test::write_text(file, clean);
      }
    }
    // Every byte of the length prefix and the header, one bit each.
    for (std::size_t at = 0; at < start; ++at) {
      CAPTURE(rank);
      CAPTURE(at);
      flip_bit(file, at, int(at % 8));
      const std::string msg = error_of([&] { read_everything(ck); });
      CAPTURE(msg);
      CHECK(has(msg, "corrupt checkpoint: "));
      CHECK(has(msg, file));
      test::write_text(file, clean);
    }
  }
  read_everything(ck);  // restored
}

TEST_CASE("range reads of any world size verify exactly the chunks they touch") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 2, 2};
  const std::int64_t n = spec.parameter_count();
  const FullState full(n);
  const std::vector<std::vector<FlatRange>> ranks = {{{0, 100}, {250, 150}}, {{100, 150}, {400, n - 400}}};
  save_from_ranks(dir.file("checkpoints"), spec, full, 2, ranks, 5, kSmallChunk);
  const std::string ck = dir.file("checkpoints/global_step2");

  // Every slicing of 1, 2, 3 and 5 ranks, read in pieces of 1 to 37 elements: the bytes come back.
  {
    const CheckpointReader reader(ck);
    for (int world : {1, 2, 3, 5})
      for (int r = 0; r < world; ++r) {
        const std::int64_t b = n * r / world, e = n * (r + 1) / world;
        for (std::int64_t piece : {1, 13, 37})
          for (std::int64_t at = b; at < e; at += piece) CHECK(reads_back(reader, full, at, std::min(piece, e - at)));
      }
  }
  // Rank 1's exp_avg chunk 10: its local elements [160, 176) are flat [410, 426).
  const std::string file = ck + "/state.rank1.safetensors";
  {
    SafetensorsReader st(file);
    flip_bit(file, data_start(file) + std::size_t(st.entry("exp_avg").begin + 10 * kSmallChunk + 5), 3);
  }
  const CheckpointReader reader(ck);
  CHECK(reads_back(reader, full, 0, 410));
  CHECK(reads_back(reader, full, 426, n - 426));
  std::vector<float> p(64);
  reader.read({400, 64}, p.data(), nullptr, nullptr);  // params only: the damaged exp_avg is not read
  for (const FlatRange& touching : {FlatRange{410, 1}, FlatRange{425, 1}, FlatRange{405, 6}, FlatRange{0, n}}) {
    CAPTURE(touching.begin);
    std::vector<float> m(static_cast<std::size_t>(touching.count));
    CHECK(has(error_of([&] { reader.read(touching, nullptr, m.data(), nullptr); }),
              "corrupt checkpoint: '" + file + "' tensor 'exp_avg' does not match its checksum in chunk 10 (bytes [640, 704)"));
  }
}

TEST_CASE("a NaN, an Inf or a negative exp_avg_sq in a checkpoint is a corrupt checkpoint naming the file and tensor") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 1, 2};
  const std::int64_t n = spec.parameter_count();
  struct Case {
    int tensor;
    float value;
    const char* says;
  };
  for (const Case c : {Case{0, NAN, "holds NaN at element 37"}, Case{1, INFINITY, "holds Inf at element 37"},
                       Case{2, -1.0f, "holds -1.000000 at element 37"}}) {
    CAPTURE(c.says);
    FullState full(n);
    (c.tensor == 0 ? full.p : c.tensor == 1 ? full.m : full.v)[37] = c.value;
    const std::string out = dir.file("run" + std::to_string(c.tensor));
    save_from_ranks(out, spec, full, 1, {{{0, n}}}, n);
    const std::string msg = error_of([&] { read_everything(out + "/global_step1"); });
    const char* names[3] = {"params", "exp_avg", "exp_avg_sq"};
    CHECK(has(msg, "corrupt checkpoint: '" + out + "/global_step1/state.rank0.safetensors' tensor '" +
                       names[c.tensor] + "' " + c.says));
    CHECK_FALSE(has(msg, "diverged"));
    if (c.tensor == 0)
      CHECK(has(error_of([&] { export_checkpoint(out, dir.file("m")); }), "tensor 'params' holds NaN"));
  }
}

TEST_CASE("a garbled checkpoint.json is a corrupt checkpoint, whichever byte is hit") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 1, 2};
  const FullState full(spec.parameter_count());
  CheckpointDir ckpt(dir.file("checkpoints"), 2);
  TrainerState st;
  st.step = 3;
  st.shape = {"data.txt", 0xabcdef01u, 4, 2, 1};
  ckpt.save(st, spec, everything(full));
  const std::string meta = dir.file("checkpoints/global_step3/checkpoint.json");
  const std::string clean = test::read_text(meta);
  for (std::size_t at = 0; at < clean.size(); ++at) {
    CAPTURE(at);
    flip_bit(meta, at, int(at * 5 % 8));
    const std::string msg = error_of([&] { read_everything(dir.file("checkpoints/global_step3")); });
    CHECK(has(msg, "corrupt checkpoint: '" + meta + "'"));
    test::write_text(meta, clean);
  }
  const CheckpointInfo info = read_checkpoint_info(dir.file("checkpoints/global_step3"));
  CHECK(info.state.shape.dataset_path == "data.txt");
  CHECK(info.state.shape.dataset_crc32c == 0xabcdef01u);
  CHECK(info.state.shape.global_batch() == 8);
}

TEST_CASE("a garbage latest file is refused without dumping it") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 1, 2};
  const FullState full(spec.parameter_count());
  save_from_ranks(dir.file("checkpoints"), spec, full, 2, {{{0, spec.parameter_count()}}}, 64);
  const std::string latest = dir.file("checkpoints/latest");

  std::string binary(3000, '\0');
  for (std::size_t i = 0; i < binary.size(); ++i) binary[i] = char((i * 131 + 7) % 256);
  test::write_text(latest, binary);
  std::string msg = error_of([&] { resolve_checkpoint(dir.path()); });
  CHECK(has(msg, "'" + latest + "' should name a global_step<N> directory, it holds '"));
  CHECK(has(msg, "... (3000 bytes)"));
  CHECK(msg.size() < 700);
  CHECK(std::all_of(msg.begin(), msg.end(), [](char c) { return c >= 0x20 && c < 0x7f; }));

  test::write_text(latest, std::string(1 << 20, 'g'));
  msg = error_of([&] { resolve_checkpoint(dir.path()); });
  CHECK(has(msg, "is 1048576 bytes, not the name of a checkpoint"));
  CHECK(msg.size() < 400);

  test::write_text(latest, "global_step99999999999999999999999");
  CHECK(has(error_of([&] { resolve_checkpoint(dir.path()); }), "it holds 'global_step99999999999999999999999'"));
  test::write_text(latest, "global_step7");
  CHECK(has(error_of([&] { resolve_checkpoint(dir.path()); }), "names 'global_step7', which is not a complete checkpoint"));
  test::write_text(latest, "global_step2\n");  // what `echo global_step2 > latest` writes
  CHECK(resolve_checkpoint(dir.path()) == dir.file("checkpoints/global_step2"));
}

TEST_CASE("export refuses to write over the files it reads or any non-empty directory; a failing export leaves nothing") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 1, 2};
  const FullState full(spec.parameter_count());
  save_from_ranks(dir.file("out/checkpoints"), spec, full, 3, {{{0, spec.parameter_count()}}}, 64, kSmallChunk);
  const std::string ck = dir.file("out/checkpoints/global_step3");
  const std::string shard = ck + "/state.rank0.safetensors";
  const std::string shard_bytes = test::read_text(shard);
  std::filesystem::create_symlink(shard, dir.file("link.safetensors"));
  std::filesystem::create_hard_link(shard, dir.file("hard.safetensors"));
  for (const std::string& out : {shard, ck + "/checkpoint.json", ck + "/../global_step3/state.rank0.safetensors",
                                 dir.file("out/checkpoints/latest"), dir.file("link.safetensors"),
                                 dir.file("hard.safetensors")}) {
    CAPTURE(out);
    CHECK(has(error_of([&] { export_checkpoint(dir.file("out"), out); }), "exists and is not a directory"));
  }
  for (const std::string& out : {ck, dir.file("out"), dir.file("out/checkpoints"), dir.file("out/")}) {
    CAPTURE(out);
    CHECK(has(error_of([&] { export_checkpoint(dir.file("out"), out); }), "already exists and is not empty"));
  }
  CHECK(test::read_text(shard) == shard_bytes);
  read_everything(ck);

  // A chunk of params damaged halfway: the export stops there, no directory
  // and no temporary is left.
  SafetensorsReader r(shard);
  flip_bit(shard, data_start(shard) + std::size_t(r.entry("params").end / 2), 0);
  CHECK(has(error_of([&] { export_checkpoint(dir.file("out"), dir.file("model")); }),
            "tensor 'params' does not match its checksum"));
  std::size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) entries += !e.path().empty();
  CHECK(entries == 3);  // out, link, hard
}

TEST_CASE("a resume on another dataset or global batch is refused with what differs; other world sizes are fine") {
  TrainerState saved;
  saved.dataset_tokens = 1000;
  saved.shape = {"a.txt", 0x11111111u, 2, 2, 2};  // 8 sequences per step
  TrainerState now = saved;
  CHECK(resume_mismatches(saved, now).empty());
  now.shape.micro_batch = 4;
  now.shape.world_size = 1;  // 4 x 2 x 1: the same global batch on one rank
  now.shape.dataset_path = "moved/a.txt";
  CHECK(resume_mismatches(saved, now).empty());
  now.shape.grad_accum = 1;
  auto diff = resume_mismatches(saved, now);
  REQUIRE(diff.size() == 1);
  CHECK(diff[0] == "global batch: the checkpoint's run had micro-batch 2 x grad-accum 2 x 2 ranks = 8 sequences per "
                   "step, this run has micro-batch 4 x grad-accum 1 x 1 rank = 4 sequences per step");
  now = saved;
  now.shape.dataset_crc32c = 0x22222222u;
  diff = resume_mismatches(saved, now);
  REQUIRE(diff.size() == 1);
  CHECK(has(diff[0], "dataset: the checkpoint's ('a.txt') and this run's ('a.txt') both have 1000 tokens, but other "
                     "ones (CRC32C 11111111 and 22222222)"));
  now.dataset_tokens = 999;
  CHECK(has(resume_mismatches(saved, now).at(0), "has 1000 tokens, this run's ('a.txt') 999"));
  // A version-2 checkpoint recorded neither: only the token count is compared.
  saved.shape = {};
  now = saved;
  now.shape = {"b.txt", 5, 1, 1, 1};
  CHECK(resume_mismatches(saved, now).empty());
}

TEST_CASE("a version-2 checkpoint (no checksums) still resumes and exports") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 1, 2};
  const std::int64_t n = spec.parameter_count();
  const FullState full(n);
  const std::string ck = dir.file("checkpoints/global_step5");
  fs::make_dirs(ck);
  const std::size_t bytes = std::size_t(n) * 4;
  write_safetensors(ck + "/state.rank0.safetensors",
                    {{"params", "F32", {n}, full.p.data(), bytes},
                     {"exp_avg", "F32", {n}, full.m.data(), bytes},
                     {"exp_avg_sq", "F32", {n}, full.v.data(), bytes}},
                    {{"format", "zinf-checkpoint-shard"}, {"version", "2"}, {"rank", "0"}, {"world_size", "1"},
                     {"step", "5"}, {"numel", std::to_string(n)}, {"ranges", "[[0," + std::to_string(n) + "]]"}});
  test::write_text(ck + "/checkpoint.json",
                   R"({"format":"zinf-checkpoint","version":2,"world_size":1,"numel":)" + std::to_string(n) +
                       R"(,"model":{"name":"custom","vocab_size":16,"seq_len":4,"hidden_size":8,"layers":1,"heads":2},)"
                       R"("state":{"step":5,"adam_steps":5,"dataset_tokens":500,"tokens_seen":40,"seed":3,)"
                       R"("data":{"epoch":0,"position":9}},"shards":["state.rank0.safetensors"]})");
  test::write_text(dir.file("checkpoints/latest"), "global_step5");
  const CheckpointReader reader(resolve_checkpoint(dir.path()));
  CHECK(reader.info().version == 2);
  CHECK(reader.info().state.shape.micro_batch == 0);  // not recorded: resume compares the token count only
  CHECK(reads_back(reader, full, 0, n));
  CHECK(reads_back(reader, full, 11, 29));
  CHECK(export_checkpoint(dir.path(), dir.file("model")) == ck);
  CHECK(reader.info().state.precision.empty());  // not recorded: the export defaults to fp32
  CHECK(has(test::read_text(dir.file("model/config.json")), "\"torch_dtype\": \"float32\""));
}

TEST_CASE("a checkpoint keeps the model's architecture: a Llama-family spec reads back field for field") {
  test::TempDir dir;
  ModelSpec spec{"custom", 32, 8, 16, 2, 4};
  spec.model_type = "qwen2";
  spec.kv_heads = 2;
  spec.intermediate_size = 24;
  spec.max_positions = 64;
  spec.norm_eps = 1e-6;
  spec.rope_theta = 500000.0;
  spec.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 16};
  spec.tied_embeddings = false;
  spec.attention_bias = true;
  spec.eos_token_id = 3;
  const std::int64_t n = spec.parameter_count();
  const FullState full(n);
  CheckpointDir ckpt(dir.file("checkpoints"), 2);
  TrainerState st;
  st.step = 1;
  ckpt.save(st, spec, everything(full));
  const ModelSpec back = CheckpointReader(*ckpt.latest()).info().spec;
  CHECK(back.model_type == "qwen2");
  CHECK(back.kv_heads == 2);
  CHECK(back.intermediate_size == 24);
  CHECK(back.max_positions == 64);
  CHECK(back.norm_eps == 1e-6);
  CHECK(back.rope_theta == 500000.0);
  CHECK(back.rope_scaling.type == "llama3");
  CHECK(back.rope_scaling.factor == 8.0);
  CHECK(back.rope_scaling.original_max_position == 16);
  CHECK_FALSE(back.tied_embeddings);
  CHECK(back.attention_bias);
  CHECK(back.eos_token_id == 3);
  CHECK(back.parameter_count() == n);
}
