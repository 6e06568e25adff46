// train: safetensors files parse back to the same bytes (also when streamed
// in pieces out of order), bad files are refused with the sizes; checkpoints
// are atomic, pruned, sharded by rank, readable on any world size, refused
// with the file and rank when a shard is missing or cut, and exportable;
// version-1 single-file checkpoints still load.
#include <doctest/doctest.h>

#include <unistd.h>

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

// Saves one checkpoint at `step` from `ranks.size()` threads, rank r owning ranks[r].
void save_from_ranks(const std::string& dir, const ModelSpec& spec, const FullState& full, std::int64_t step,
                     const std::vector<std::vector<FlatRange>>& ranks, std::int64_t piece) {
  const int world = int(ranks.size());
  ThreadBarrier barrier(world);
  std::vector<std::string> errors(ranks.size());
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        CheckpointDir ckpt(dir, 2, CheckpointGroup{r, world, [&] { barrier.wait(); }});
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
    CHECK(info.version == 2);
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

  // export: the same bytes as a model file written from the full vector at once.
  export_checkpoint(dir.file("out"), dir.file("exported.safetensors"));
  write_model_safetensors(dir.file("direct.safetensors"), spec, [&](const FlatRange& r, float* dst) {
    std::copy(full.p.begin() + r.begin, full.p.begin() + r.end(), dst);
  }, /*chunk=*/33);
  CHECK(test::read_text(dir.file("exported.safetensors")) == test::read_text(dir.file("direct.safetensors")));
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
  CHECK(error_of([&] { export_checkpoint(dir.path(), dir.file("x.safetensors")); }).find("rank 1") != std::string::npos);

  // A shard from another step (copied in by hand) is not silently mixed in.
  test::write_text(shard1, bytes);
  save_from_ranks(dir.file("other"), spec, full, 6, {{{0, n / 2}}, {{n / 2, n - n / 2}}}, 64);
  test::write_text(shard1, test::read_text(dir.file("other/global_step6/state.rank1.safetensors")));
  msg = error_of([&] { CheckpointReader r(ck); });
  CHECK(msg.find("is the shard of rank 1 of 2 at step 6") != std::string::npos);
  CHECK(msg.find("expects rank 1 of 2 at step 5") != std::string::npos);

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
  CHECK(export_checkpoint(dir.path(), dir.file("model.safetensors")) == dir.file("checkpoints/global_step9"));
  SafetensorsReader model(dir.file("model.safetensors"));
  std::vector<float> wte(16 * 8);
  model.read("transformer.wte.weight", wte.data(), wte.size() * 4);
  CHECK(std::equal(wte.begin(), wte.end(), full.p.begin()));
}

TEST_CASE("export writes every parameter under its nanoGPT name") {
  test::TempDir dir;
  const ModelSpec spec{"custom", 16, 4, 8, 2, 2};
  const std::int64_t n = spec.parameter_count();
  const FullState full(n);
  CheckpointDir ckpt(dir.file("out/checkpoints"), 2);
  TrainerState st;
  st.step = 3;
  ckpt.save(st, spec, everything(full));
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
      CHECK(std::equal(back.begin(), back.end(), full.p.begin() + param.offset));
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
  fs::make_dirs(dir.file("ck2"));
  test::write_text(dir.file("ck2/checkpoint.json"), R"({"format":"zinf-checkpoint","version":7})");
  CHECK(error_of([&] { read_checkpoint_info(dir.file("ck2")); }).find("is checkpoint version 7, this build reads versions 1 and 2") !=
        std::string::npos);
}
