// cli: `zinf launch --nproc 2 -- train ...` end to end on the tiny model (CPU,
// Gloo): two ranks with micro-batch 2 give the losses of one rank with
// micro-batch 4 for stage none, zero1 and zero2 (and, once the engine
// partitions, zero3 and infinity); only rank 0 writes the outputs; a stopped
// 2-rank run resumes to its uninterrupted losses; checkpoints move between 1
// and 2 ranks; a 2-rank checkpoint exports to the 1-rank model; and missing
// shards, differing configurations, absent peers and a bad RANK stop with
// errors that say what and where.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "support/run_metrics.h"
#include "support/test_util.h"

using nlohmann::json;
using zinf::test::free_port;
using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

// Multi-rank CPU runs need Gloo; LibTorch builds without its headers (PyTorch
// wheels on GPU hosts) cannot run them.
bool skip_without_gloo() {
#if ZINF_TEST_GLOO
  return false;
#else
  MESSAGE("skipped: this zinf was built without Gloo (LibTorch's Gloo headers not found)");
  return true;
#endif
}

constexpr int kSteps = 8;

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

// The tiny model on short sequences; 8 steps of 2 micro-batches. A constant
// LR: runs of 4 steps resumed to 8 are compared with the 8-step reference,
// and the default schedule's warmup and cosine follow --steps.
std::vector<std::string> train_args(const std::string& out, int batch, int steps, const std::vector<std::string>& extra) {
  std::vector<std::string> a = {"train",        "--device",     "cpu", "--model", "tiny", "--seq-len", "32",
                                "--batch-size", std::to_string(batch), "--grad-accum", "2",  "--steps",
                                std::to_string(steps), "--output-dir", out, "--lr", "2e-3", "--seed", "5",
                                "--eval-every", "1000", "--lr-schedule", "constant"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

std::vector<std::string> launch_args(int nproc, const std::vector<std::string>& train) {
  std::vector<std::string> a = {"launch", "--nproc", std::to_string(nproc), "--master-port", std::to_string(free_port()),
                                "--"};
  a.insert(a.end(), train.begin(), train.end());
  return a;
}

// Children run LibTorch single-threaded, as `zinf launch` gives each of 2
// ranks on a 2-core machine.
zinf::test::RunResult one_rank(const std::vector<std::string>& train) { return run_zinf(train, {{"OMP_NUM_THREADS", "1"}}); }
zinf::test::RunResult two_ranks(const std::vector<std::string>& train) { return run_zinf(launch_args(2, train)); }

std::vector<json> metrics(const std::string& out) { return zinf::test::metrics_lines(out); }

std::vector<double> losses(const std::string& out) { return zinf::test::step_losses(out); }

void check_losses(const std::vector<double>& got, const std::vector<double>& want, double rel) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(rel));
  }
}


// A safetensors file's header text and its data section as floats.
std::pair<std::string, std::vector<float>> read_model(const std::string& path) {
  const std::string raw = read_text(path);
  REQUIRE(raw.size() >= 8);
  std::uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  REQUIRE(8 + n <= raw.size());
  std::vector<float> data((raw.size() - 8 - n) / 4);
  std::memcpy(data.data(), raw.data() + 8 + n, data.size() * 4);
  return {raw.substr(8, n), data};
}

// The runs several cases compare against, made once per test process.
struct Reference {
  TempDir dir{"zinf-cli-multirank"};
  std::string single;                          // 1 rank x batch 4, stage none
  std::map<std::string, std::string> pair;     // stage -> 2 ranks x batch 2
  std::map<std::string, zinf::test::RunResult> pair_runs;
};

const Reference& reference() {
  static std::unique_ptr<Reference> ref;  // removed with its directory at exit
  if (!ref) {
    auto r = std::make_unique<Reference>();
    r->single = r->dir.file("single");
    const auto s = one_rank(train_args(r->single, 4, kSteps, {}));
    REQUIRE_MESSAGE(s.exit_code == 0, s.err);
    for (const char* stage : {"none", "zero1", "zero2"}) {
      const std::string out = r->dir.file(std::string("pair-") + stage);
      const auto p = two_ranks(train_args(out, 2, kSteps, {"--zero-stage", stage}));
      REQUIRE_MESSAGE(p.exit_code == 0, p.err);
      r->pair[stage] = out;
      r->pair_runs[stage] = p;
    }
    ref = std::move(r);
  }
  return *ref;
}

// True when a line of `output` from `rank` (as `zinf launch` prefixes it)
// is an info-level log line.
bool logs_info(const std::string& output, int rank) {
  std::istringstream lines(output);
  const std::string prefix = "[rank " + std::to_string(rank) + "] ";
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(prefix, 0) == 0 && contains(line, " info]")) return true;
  return false;
}

// `zinf launch` in the background, its output in files.
struct Background {
  pid_t pid = -1;
  int wait() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  ~Background() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

void start(Background& bg, const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv_s = {ZINF_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::setenv("ZINF_PRESETS_DIR", ZINF_SOURCE_DIR "/presets", 1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  bg.pid = pid;
}

std::size_t line_count(const std::string& path) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

// 2 ranks x batch 2 against 1 rank x batch 4, through the engine.
void check_engine_stage(const std::string& name, const std::vector<std::string>& flags) {
  const Reference& ref = reference();
  TempDir dir("zinf-cli-multirank-engine");
  const std::string out = dir.file(name);
  const auto r = two_ranks(train_args(out, 2, kSteps, flags));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  check_losses(losses(out), losses(ref.single), 1e-4);
  CHECK(metrics(out).back()["val_loss"].get<double>() ==
        doctest::Approx(metrics(ref.single).back()["val_loss"].get<double>()).epsilon(1e-4));
  const json meta = json::parse(read_text(out + "/checkpoints/global_step" + std::to_string(kSteps) + "/checkpoint.json"));
  CHECK(meta["world_size"] == 2);
}

}  // namespace

TEST_CASE("2 ranks x batch 2 give the losses of 1 rank x batch 4 for stage none, zero1 and zero2") {
  if (skip_without_gloo()) return;
  const Reference& ref = reference();
  const auto want = losses(ref.single);
  REQUIRE(want.size() == kSteps);
  const json single_summary = json::parse(read_text(ref.single + "/summary.json"));
  for (const char* stage : {"none", "zero1", "zero2"}) {
    CAPTURE(stage);
    const std::string out = ref.pair.at(stage);
    check_losses(losses(out), want, 1e-4);
    CHECK(metrics(out).back()["val_loss"].get<double>() ==
          doctest::Approx(metrics(ref.single).back()["val_loss"].get<double>()).epsilon(1e-4));
    const json summary = json::parse(read_text(out + "/summary.json"));
    CHECK(summary["world_size"] == 2);
    CHECK(summary["tokens_per_step"] == single_summary["tokens_per_step"]);  // the same global batch
    // Every rank wrote its shard; rank 0 the rest, once.
    const std::string ck = out + "/checkpoints/global_step" + std::to_string(kSteps);
    CHECK(json::parse(read_text(ck + "/checkpoint.json"))["world_size"] == 2);
    CHECK(std::filesystem::file_size(ck + "/state.rank0.safetensors") > 0);
    CHECK(std::filesystem::file_size(ck + "/state.rank1.safetensors") > 0);
    const auto& run = ref.pair_runs.at(stage);
    std::size_t summaries = 0;
    std::istringstream lines(run.out);
    for (std::string line; std::getline(lines, line);) summaries += contains(line, "\"world_size\":2");
    CHECK(summaries == 1);                               // only rank 0 prints the summary
    CHECK_FALSE(logs_info(run.err, 1));  // rank 1 reports only warnings and errors
    CHECK(logs_info(run.err, 0));
    CHECK(contains(run.err, "every rank resolved the same configuration"));
  }
}

TEST_CASE("zinf export of a 2-rank checkpoint gives the 1-rank run's model") {
  if (skip_without_gloo()) return;
  const Reference& ref = reference();
  TempDir dir("zinf-cli-multirank");
  const auto e = run_zinf({"export", ref.pair.at("zero2"), dir.file("exported")});
  REQUIRE_MESSAGE(e.exit_code == 0, e.err);
  // The 2-rank run's own model/ was written from the same shards.
  CHECK(read_text(dir.file("exported/model.safetensors")) == read_text(ref.pair.at("zero2") + "/model/model.safetensors"));
  const auto [header, got] = read_model(dir.file("exported/model.safetensors"));
  const auto [want_header, want] = read_model(ref.single + "/model/model.safetensors");
  CHECK(header == want_header);
  REQUIRE(got.size() == want.size());
  REQUIRE(got.size() == 830208);  // the tiny model at seq-len 32, the tied head stored once
  double max_diff = 0, sum_diff = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = std::abs(double(got[i]) - double(want[i]));
    max_diff = std::max(max_diff, d);
    sum_diff += d;
  }
  INFO("max |difference| " << max_diff << ", mean " << sum_diff / double(got.size()));
  CHECK(max_diff < 1e-4);
  CHECK(sum_diff / double(got.size()) < 1e-6);
}

TEST_CASE("a 2-rank run stopped by SIGTERM resumes to the losses of the uninterrupted 2-rank run") {
  if (skip_without_gloo()) return;
  const Reference& ref = reference();
  TempDir dir("zinf-cli-multirank");
  const std::string out = dir.file("stopped");
  const auto args = train_args(out, 2, kSteps, {"--zero-stage", "zero2", "--save-every", "1"});
  {
    Background bg;
    start(bg, launch_args(2, args), dir.file("launch.log"));
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    while (line_count(out + "/metrics.jsonl") < 2 && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ::kill(bg.pid, SIGTERM);  // the launcher forwards it to both ranks
    const int code = bg.wait();
    INFO(read_text(dir.file("launch.log")));
    CHECK(code == 130);
  }
  const std::size_t done = line_count(out + "/metrics.jsonl");
  REQUIRE(done < std::size_t(kSteps));
  CHECK(read_text(out + "/checkpoints/latest") == "global_step" + std::to_string(done));  // both ranks saved that step
  auto resume = args;
  resume.push_back("--resume");
  const auto r = two_ranks(resume);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(contains(r.err, "resumed from " + out + "/checkpoints/global_step" + std::to_string(done)));
  check_losses(losses(out), losses(ref.pair.at("zero2")), 1e-6);
}

TEST_CASE("a 2-rank checkpoint resumes on 1 rank, and a 1-rank checkpoint on 2 ranks, to the 1-rank losses") {
  if (skip_without_gloo()) return;
  const Reference& ref = reference();
  TempDir dir("zinf-cli-multirank");
  const auto want = losses(ref.single);

  const std::string down = dir.file("two-then-one");
  REQUIRE(two_ranks(train_args(down, 2, 4, {"--zero-stage", "zero1"})).exit_code == 0);
  const auto d = one_rank(train_args(down, 4, kSteps, {"--zero-stage", "zero1", "--resume"}));
  REQUIRE_MESSAGE(d.exit_code == 0, d.err);
  CHECK(contains(d.err, "at step 4 (written by 2 ranks, re-sliced for 1)"));
  check_losses(losses(down), want, 1e-4);

  const std::string up = dir.file("one-then-two");
  REQUIRE(one_rank(train_args(up, 4, 4, {})).exit_code == 0);
  const auto u = two_ranks(train_args(up, 2, kSteps, {"--zero-stage", "zero2", "--resume"}));
  REQUIRE_MESSAGE(u.exit_code == 0, u.err);
  CHECK(contains(u.err, "at step 4 (written by 1 rank, re-sliced for 2)"));
  check_losses(losses(up), want, 1e-4);
  CHECK(json::parse(read_text(up + "/checkpoints/global_step8/checkpoint.json"))["world_size"] == 2);
}

TEST_CASE("a deleted or truncated checkpoint shard stops export and resume, naming the file and the rank") {
  if (skip_without_gloo()) return;
  const Reference& ref = reference();
  TempDir dir("zinf-cli-multirank");
  const std::string out = dir.file("copy");
  std::filesystem::copy(ref.pair.at("zero1"), out, std::filesystem::copy_options::recursive);
  const std::string ck = out + "/checkpoints/global_step" + std::to_string(kSteps);

  std::filesystem::remove(ck + "/state.rank1.safetensors");
  const auto e = run_zinf({"export", out, dir.file("x")});
  CHECK(e.exit_code == 2);
  CHECK(contains(e.err, "lacks the shard file of rank 1 of 2: '" + ck + "/state.rank1.safetensors' does not exist"));
  CHECK_FALSE(std::filesystem::exists(dir.file("x")));
  const auto r = one_rank(train_args(out, 4, kSteps + 2, {"--resume"}));
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "rank 1 of 2"));

  std::filesystem::copy(ref.pair.at("zero1") + "/checkpoints/global_step" + std::to_string(kSteps) +
                            "/state.rank1.safetensors",
                        ck + "/state.rank1.safetensors");
  std::filesystem::resize_file(ck + "/state.rank0.safetensors", std::filesystem::file_size(ck + "/state.rank0.safetensors") / 2);
  const auto t = run_zinf({"export", out, dir.file("x")});
  CHECK(t.exit_code == 2);
  CHECK(contains(t.err, "rank 0 of 2's checkpoint shard: '" + ck + "/state.rank0.safetensors' is not a valid safetensors"));
}

TEST_CASE("ranks started with different configurations stop before training, naming the key and both values") {
  if (skip_without_gloo()) return;
  TempDir dir("zinf-cli-multirank");
  const std::string out = dir.file("run");
  std::string cmd = std::string("exec ") + ZINF_BINARY;
  for (const auto& a : train_args(out, 2, 2, {})) cmd += " '" + a + "'";
  cmd += " --warmup-steps $((RANK * 3))";  // rank 0: 0, rank 1: 3
  const auto r = run_zinf({"launch", "--nproc", "2", "--master-port", std::to_string(free_port()), "--", "/bin/sh", "-c", cmd});
  CHECK(r.exit_code != 0);
  CHECK(contains(r.err, "rank 1 was started with a configuration that differs from rank 0's: "
                        "scheduler.params.warmup_num_steps is 3 on rank 1 but 0 on rank 0"));
  CHECK(contains(r.err, "(ranks whose configuration differs from rank 0's: 1)"));
  CHECK(contains(r.err, "hint: start every rank with the same command"));
  CHECK_FALSE(std::filesystem::exists(out + "/metrics.jsonl"));
}

TEST_CASE("a rank whose peers never arrive fails within the timeout, naming MASTER_ADDR:MASTER_PORT") {
  if (skip_without_gloo()) return;
  TempDir dir("zinf-cli-multirank");
  for (const char* rank : {"0", "1"}) {
    CAPTURE(rank);
    const int port = free_port();
    auto args = train_args(dir.file(std::string("alone") + rank), 2, 1, {"--comm-timeout", "2"});
    const auto t0 = Clock::now();
    const auto r = run_zinf(args, {{"RANK", rank}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"},
                                   {"MASTER_PORT", std::to_string(port)}, {"OMP_NUM_THREADS", "1"}});
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    CHECK(r.exit_code == 1);
    CHECK(contains(r.err, "127.0.0.1:" + std::to_string(port) + " (rank " + rank + " of 2)"));
    CHECK(seconds < 30);
    // Only rank 0 writes the run's files, and only once the group exists.
    CHECK_FALSE(std::filesystem::exists(dir.file(std::string("alone") + rank + "/ds_config.json")));
  }
}

TEST_CASE("zinf train refuses a RANK outside WORLD_SIZE") {
  TempDir dir("zinf-cli-multirank");
  const auto r = run_zinf(train_args(dir.file("out"), 2, 1, {}),
                          {{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "RANK=2 must be less than WORLD_SIZE=2"));
  CHECK_FALSE(std::filesystem::exists(dir.file("out")));
}

// ---------------------------------------------------------------- engine
// Through zero::OffloadEngine partitioned across ranks; ctest runs these as
// their own entry, cli.engine_ranks.

TEST_CASE("2 ranks x batch 2 give the losses of 1 rank x batch 4 for zero3, through the ZeRO engine") {
  if (skip_without_gloo()) return;
  check_engine_stage("zero3", {"--zero-stage", "zero3"});
}

TEST_CASE("2 ranks x batch 2 give the losses of 1 rank x batch 4 for infinity with CPU offload, through the ZeRO engine") {
  if (skip_without_gloo()) return;
  check_engine_stage("infinity-cpu", {"--preset", "infinity-cpu"});
}

TEST_CASE("2 ranks x batch 2 give the losses of 1 rank x batch 4 for infinity with NVMe offload, through the ZeRO engine") {
  if (skip_without_gloo()) return;
  TempDir swap("zinf-cli-multirank-swap");
  check_engine_stage("infinity-nvme", {"--zero-stage", "infinity", "--nvme-offload-path", swap.path()});
}

TEST_CASE("a zero3 checkpoint of 2 ranks resumes on 1 rank and one of 1 rank on 2, through the ZeRO engine") {
  if (skip_without_gloo()) return;
  const Reference& ref = reference();
  TempDir dir("zinf-cli-multirank-engine");
  const std::vector<std::string> zero3 = {"--zero-stage", "zero3"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), zero3.begin(), zero3.end());
    return extra;
  };
  const std::string down = dir.file("two-then-one"), up = dir.file("one-then-two");
  REQUIRE(two_ranks(train_args(down, 2, 4, zero3)).exit_code == 0);
  const auto d = one_rank(train_args(down, 4, kSteps, with({"--resume"})));
  REQUIRE_MESSAGE(d.exit_code == 0, d.err);
  check_losses(losses(down), losses(ref.single), 1e-4);
  REQUIRE(one_rank(train_args(up, 4, 4, zero3)).exit_code == 0);
  const auto u = two_ranks(train_args(up, 2, kSteps, with({"--resume"})));
  REQUIRE_MESSAGE(u.exit_code == 0, u.err);
  check_losses(losses(up), losses(ref.single), 1e-4);
}

TEST_CASE("2 ranks start a pretrained Llama (GQA, llama3 rope) with the 1-rank losses, zero2 and through the ZeRO engine (zero3, infinity-cpu)") {
  if (skip_without_gloo()) return;
  // Each zero3 rank reads only its shard of each block from the sharded HF
  // directory; stage 2 ranks read whole blocks: the losses must not tell.
  TempDir dir("zinf-cli-multirank-pretrained");
  std::vector<std::uint16_t> ids(4000);
  std::uint32_t x = 12345;
  for (auto& id : ids) id = static_cast<std::uint16_t>((x = x * 1664525u + 1013904223u) >> 16) % 96;
  zinf::test::write_llmc_u16(dir.file("tokens.bin"), ids);
  const std::string model = std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/models/llama-sharded";
  auto args = [&](const std::string& out, int batch, const std::vector<std::string>& stage) {
    std::vector<std::string> a = {"train", "--device", "cpu", "--from-pretrained", model, "--dataset-file",
                                  dir.file("tokens.bin"), "--seq-len", "16", "--batch-size", std::to_string(batch),
                                  "--grad-accum", "2", "--steps", "4", "--lr", "1e-2", "--lr-schedule", "constant",
                                  "--eval-every", "1000", "--output-dir", out, "--no-save"};
    a.insert(a.end(), stage.begin(), stage.end());
    return a;
  };
  const auto single = one_rank(args(dir.file("single"), 4, {"--zero-stage", "none"}));
  REQUIRE_MESSAGE(single.exit_code == 0, single.err);
  const auto want = losses(dir.file("single"));
  REQUIRE(want.size() == 4);
  for (const std::vector<std::string>& stage : std::vector<std::vector<std::string>>{
           {"--zero-stage", "zero2"}, {"--zero-stage", "zero3"}, {"--preset", "infinity-cpu"}}) {
    CAPTURE(stage[1]);
    const std::string out = dir.file("two-" + stage[1]);
    const auto r = two_ranks(args(out, 2, stage));
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    check_losses(losses(out), want, 1e-4);
  }
}
