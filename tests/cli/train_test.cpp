// cli: `zinf train` and `zinf export` end to end on the tiny model (CPU):
// the loss falls on the bundled corpus, every output is written (the model as
// a Hugging Face directory), the export of a GPT-2 and a Llama run's
// checkpoint is its master weights bit for bit in fp32 and hf::dtype's
// rounding of them in bf16, a run killed
// with SIGKILL resumes to exactly the losses of an uninterrupted run, SIGTERM
// stops with a checkpoint and exit code 130, a disk that fills stops the run
// with the last checkpoint intact, and bad input gets clear errors.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "hf/dtype.h"
#include "hf/safetensors.h"
#include "support/run_metrics.h"
#include "support/test_util.h"

using nlohmann::json;
using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using zinf::test::write_llmc_u16;
using zinf::test::write_text;

namespace {

// Children run LibTorch single-threaded: on a small, shared CI machine
// OpenMP threads competing for cores are several times slower than one.
const std::map<std::string, std::string> kEnv = {{"OMP_NUM_THREADS", "1"}};

zinf::test::RunResult train(const std::vector<std::string>& args) { return run_zinf(args, kEnv); }

// A small, quick configuration: the tiny model on short sequences.
std::vector<std::string> quick_args(const std::string& out, int steps) {
  return {"train",       "--device",     "cpu", "--model", "tiny", "--seq-len", "64", "--batch-size", "4",
          "--steps",     std::to_string(steps), "--output-dir", out, "--lr", "1e-3", "--seed", "11"};
}

std::vector<json> metrics_of(const std::string& out) { return zinf::test::metrics_lines(out); }

std::size_t line_count(const std::string& path) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

// Starts zinf in the background (output discarded); returns its pid.
pid_t spawn_zinf(const std::vector<std::string>& args) {
  std::vector<std::string> argv_s = {ZINF_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "OMP_NUM_THREADS=", 16) != 0) env_s.push_back(*e);
  for (const auto& [k, v] : kEnv) env_s.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  REQUIRE(posix_spawn(&pid, ZINF_BINARY, &fa, nullptr, argv.data(), envp.data()) == 0);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Waits until `path` has at least `lines` lines (or the process ended).
void wait_for_lines(pid_t pid, const std::string& path, std::size_t lines) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (line_count(path) < lines && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) FAIL("zinf train ended before step " << lines);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The tensor names and data size of a safetensors file, parsed by hand.
std::pair<json, std::size_t> safetensors_header(const std::string& path) {
  const std::string raw = read_text(path);
  REQUIRE(raw.size() >= 8);
  std::uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  REQUIRE(8 + n <= raw.size());
  return {json::parse(raw.substr(8, n)), raw.size() - 8 - n};
}

// An llm.c token file: 256 int32 header (magic 20240520, version 1, count), uint16 tokens.

}  // namespace

TEST_CASE("zinf train: the loss falls on the bundled corpus and every output is written") {
  TempDir dir;
  const std::string out = dir.file("run");
  auto args = quick_args(out, 40);
  args.insert(args.end(), {"--eval-every", "20", "--save-every", "15", "--warmup-steps", "5"});
  const auto r = train(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);

  const json config = json::parse(read_text(out + "/ds_config.json"));
  CHECK(config["zinf"]["model"]["seq_len"] == 64);
  CHECK(config["zinf"]["data"]["dataset_file"].get<std::string>().find("data/corpus.txt") != std::string::npos);

  const auto lines = metrics_of(out);
  REQUIRE(lines.size() == 40);
  for (const char* key : {"step", "loss", "lr", "tokens_per_s", "peak_gpu_bytes", "rss_bytes", "nvme_read_bytes",
                          "nvme_write_bytes"})
    CHECK_MESSAGE(lines[5].contains(key), key);
  CHECK(lines[0]["step"] == 1);
  CHECK(lines[39]["step"] == 40);
  CHECK(lines[19].contains("val_loss"));
  CHECK_FALSE(lines[20].contains("val_loss"));
  CHECK(lines[5]["rss_bytes"].get<double>() > 0);
  const double first = lines[0]["loss"], last = lines[39]["loss"];
  CHECK(first == doctest::Approx(std::log(256.0)).epsilon(0.1));
  CHECK(last < first - 1.5);
  CHECK(lines[39]["val_loss"].get<double>() < lines[19]["val_loss"].get<double>());

  const json summary = json::parse(read_text(out + "/summary.json"));
  for (const char* key : {"peak_rss_bytes", "peak_gpu_bytes", "nvme_peak_bytes", "mean_tokens_per_s", "final_loss"})
    CHECK_MESSAGE(summary.contains(key), key);
  CHECK(summary["final_loss"] == last);
  CHECK(summary["mean_tokens_per_s"].get<double>() > 0);
  CHECK(json::parse(r.out)["steps"] == 40);  // the one-line summary on stdout

  CHECK(read_text(out + "/checkpoints/latest") == "global_step40");
  CHECK(read_text(out + "/checkpoints/global_step30/state.rank0.safetensors").size() > 0);
  CHECK(json::parse(read_text(out + "/checkpoints/global_step30/checkpoint.json"))["world_size"] == 1);
  CHECK(read_text(out + "/checkpoints/global_step15/checkpoint.json").empty());  // pruned: keep 2

  // The model: a Hugging Face directory in the run's precision (fp32 on CPU).
  const auto [header, data_bytes] = safetensors_header(out + "/model/model.safetensors");
  CHECK(header.size() == 1 + 2 + 4 * 12 + 2);  // metadata, embedding, 4 blocks, ln_f (the head is tied)
  CHECK(header["transformer.wte.weight"]["shape"] == json::array({256, 128}));
  CHECK(header["transformer.wte.weight"]["dtype"] == "F32");
  CHECK(header["transformer.h.0.mlp.c_fc.weight"]["shape"] == json::array({128, 512}));  // HF Conv1D: [in, out]
  CHECK(header["transformer.h.0.attn.c_attn.weight"]["shape"] == json::array({128, 384}));
  CHECK_FALSE(header.contains("lm_head.weight"));
  CHECK(data_bytes == std::size_t(4 * (256 * 128 + 64 * 128 + 4 * 198272 + 256)));
  const json hf_config = json::parse(read_text(out + "/model/config.json"));
  CHECK(hf_config["architectures"] == json::array({"GPT2LMHeadModel"}));
  CHECK(hf_config["n_embd"] == 128);
  CHECK(hf_config["n_layer"] == 4);
  CHECK(hf_config["vocab_size"] == 256);
  CHECK(hf_config["torch_dtype"] == "float32");
  CHECK_FALSE(std::filesystem::exists(out + "/model/model.safetensors.index.json"));
  CHECK_FALSE(std::filesystem::exists(out + "/model.safetensors"));

  // zinf export from the final checkpoint gives the same files, byte for byte.
  const auto e = run_zinf({"export", out, dir.file("exported")});
  INFO(e.err);
  REQUIRE(e.exit_code == 0);
  for (const char* file : {"model.safetensors", "config.json"})
    CHECK(read_text(dir.file("exported/") + file) == read_text(out + "/model/" + file));
}

TEST_CASE("zinf train: a run killed with SIGKILL resumes to exactly the uninterrupted losses") {
  TempDir dir;
  auto args_for = [&](const std::string& out) {
    auto a = quick_args(out, 10);
    a.insert(a.end(), {"--save-every", "1", "--grad-accum", "2", "--eval-every", "5", "--lr-schedule", "cosine",
                       "--warmup-steps", "3"});
    return a;
  };
  const auto full = train(args_for(dir.file("full")));
  INFO(full.err);
  REQUIRE(full.exit_code == 0);

  const std::string out = dir.file("killed");
  const pid_t pid = spawn_zinf(args_for(out));
  wait_for_lines(pid, out + "/metrics.jsonl", 4);
  ::kill(pid, SIGKILL);
  CHECK(wait_exit(pid) == 128 + SIGKILL);
  CHECK(line_count(out + "/metrics.jsonl") < 10);

  auto resume = args_for(out);
  resume.push_back("--resume");
  const auto r = train(resume);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("resumed from") != std::string::npos);

  const auto a = metrics_of(dir.file("full")), b = metrics_of(out);
  REQUIRE(a.size() == 10);
  REQUIRE(b.size() == 10);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(b[i]["step"] == a[i]["step"]);
    CHECK(b[i]["loss"].get<double>() == a[i]["loss"].get<double>());
    CHECK(b[i]["lr"].get<double>() == a[i]["lr"].get<double>());
    CHECK(b[i].value("val_loss", -1.0) == a[i].value("val_loss", -1.0));
  }
  CHECK(read_text(out + "/model/model.safetensors") == read_text(dir.file("full") + "/model/model.safetensors"));
}

TEST_CASE("zinf train: bf16 with fp32 master weights learns and resumes exactly (the CUDA code path, on CPU)") {
  TempDir dir;
  auto args_for = [&](const std::string& out) {
    auto a = quick_args(out, 8);
    a.insert(a.end(), {"--precision", "bf16", "--grad-accum", "2", "--save-every", "1", "--warmup-steps", "2"});
    return a;
  };
  const auto full = train(args_for(dir.file("full")));
  INFO(full.err);
  REQUIRE(full.exit_code == 0);
  const auto a = metrics_of(dir.file("full"));
  REQUIRE(a.size() == 8);
  CHECK(a[7]["loss"].get<double>() < a[0]["loss"].get<double>() - 0.5);
  const auto [header, data_bytes] = safetensors_header(dir.file("full") + "/model/model.safetensors");
  CHECK(header["transformer.h.0.mlp.c_fc.weight"]["dtype"] == "BF16");  // the run's precision
  CHECK(json::parse(read_text(dir.file("full") + "/model/config.json"))["torch_dtype"] == "bfloat16");

  const std::string out = dir.file("stopped");
  const pid_t pid = spawn_zinf(args_for(out));
  wait_for_lines(pid, out + "/metrics.jsonl", 3);
  ::kill(pid, SIGKILL);
  wait_exit(pid);
  auto resume = args_for(out);
  resume.push_back("--resume");
  const auto r = train(resume);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto b = metrics_of(out);
  REQUIRE(b.size() == 8);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(b[i]["loss"].get<double>() == a[i]["loss"].get<double>());
  }
}

TEST_CASE("zinf train: SIGTERM stops after the current step with a checkpoint and exit code 130") {
  TempDir dir;
  const std::string out = dir.file("run");
  const pid_t pid = spawn_zinf(quick_args(out, 100000));
  wait_for_lines(pid, out + "/metrics.jsonl", 2);
  ::kill(pid, SIGTERM);
  CHECK(wait_exit(pid) == 130);
  const std::size_t steps = line_count(out + "/metrics.jsonl");
  CHECK(read_text(out + "/checkpoints/latest") == "global_step" + std::to_string(steps));
  const json summary = json::parse(read_text(out + "/summary.json"));
  CHECK(summary["interrupted"] == true);
  CHECK(summary["steps"] == steps);
}

TEST_CASE("zinf train: bad data, paths and stages get clear errors") {
  TempDir dir;
  int runs = 0;
  auto run = [&](const std::vector<std::string>& extra) {
    auto args = quick_args(dir.file("out" + std::to_string(++runs)), 1);
    args.insert(args.end(), extra.begin(), extra.end());
    return train(args);
  };
  auto missing = run({"--dataset-file", dir.file("missing.txt")});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("dataset file '" + dir.file("missing.txt") + "' does not exist") != std::string::npos);
  CHECK(missing.err.find("hint:") != std::string::npos);

  write_text(dir.file("empty.txt"), "");
  auto empty = run({"--dataset-file", dir.file("empty.txt")});
  CHECK(empty.exit_code == 2);
  CHECK(empty.err.find("is empty") != std::string::npos);

  write_text(dir.file("short.txt"), std::string(50, 'a'));
  auto shortdata = run({"--dataset-file", dir.file("short.txt")});
  CHECK(shortdata.exit_code == 2);
  CHECK(shortdata.err.find("seq-len 64 is longer than the data") != std::string::npos);
  CHECK(shortdata.err.find("lower --seq-len") != std::string::npos);

  std::vector<std::uint16_t> ids(4000);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::uint16_t>((i * 37) % 300 + (i % 7 == 0 ? 700 : 0));
  write_llmc_u16(dir.file("tokens.bin"), ids);
  auto small_vocab = run({"--dataset-file", dir.file("tokens.bin"), "--vocab-size", "512"});
  CHECK(small_vocab.exit_code == 2);
  CHECK(small_vocab.err.find("contains token id 999") != std::string::npos);
  CHECK(small_vocab.err.find("--vocab-size to at least 1000") != std::string::npos);
  auto bin = run({"--dataset-file", dir.file("tokens.bin"), "--vocab-size", "1024"});
  CHECK(bin.exit_code == 0);

  write_text(dir.file("broken.bin"), std::string(1024 + 10, '\0'));
  auto broken = run({"--dataset-file", dir.file("broken.bin")});
  CHECK(broken.exit_code == 2);
  CHECK(broken.err.find("has magic 0, expected 20240520") != std::string::npos);

  // A path below a regular file cannot be created, even by root.
  write_text(dir.file("file.txt"), "x");
  auto args = quick_args(dir.file("file.txt/out"), 1);
  auto unwritable = train(args);
  CHECK(unwritable.exit_code != 0);
  CHECK(unwritable.err.find(dir.file("file.txt/out")) != std::string::npos);
  CHECK(unwritable.err.find("Not a directory") != std::string::npos);

  auto nvme_grads = run({"--zero-stage", "zero3", "--nvme-offload-path", dir.file("swap"), "--nvme-offload-gradients"});
  CHECK(nvme_grads.exit_code == 2);
  CHECK(nvme_grads.err.find("needs the optimizer offloaded too") != std::string::npos);

  auto fp16 = run({"--precision", "fp16"});
  CHECK(fp16.exit_code == 2);
  CHECK(fp16.err.find("fp16 trains on CUDA only") != std::string::npos);

  // A finished run is not overwritten by accident.
  const std::string out = dir.file("done");
  REQUIRE(train(quick_args(out, 1)).exit_code == 0);
  auto again = train(quick_args(out, 2));
  CHECK(again.exit_code == 2);
  CHECK(again.err.find("already holds a run") != std::string::npos);
  auto more = quick_args(out, 2);
  more.push_back("--resume");
  CHECK(train(more).exit_code == 0);
  CHECK(line_count(out + "/metrics.jsonl") == 2);
}

namespace {

// The output directory's checkpoints: `latest`'s tag and whether an
// unfinished (.tmp-) checkpoint was left behind.
std::pair<std::string, bool> checkpoints_of(const std::string& out) {
  bool tmp_left = false;
  for (const auto& e : std::filesystem::directory_iterator(out + "/checkpoints"))
    tmp_left |= e.path().filename().string().rfind(".tmp-", 0) == 0;
  return {read_text(out + "/checkpoints/latest"), tmp_left};
}

// Losses of steps `from`.. of a run, by metrics.jsonl line.
std::vector<double> losses_from(const std::string& out, std::size_t from) {
  std::vector<double> l;
  const auto m = metrics_of(out);
  for (std::size_t i = from; i < m.size(); ++i) l.push_back(m[i]["loss"].get<double>());
  return l;
}

}  // namespace

TEST_CASE("zinf train: a disk that fills stops the run with the error, and the last checkpoint resumes exactly") {
  TempDir dir;
  auto args_for = [&](const std::string& out, int steps) {
    auto a = quick_args(out, steps);
    // A 4-step run extended to 8 must equal the 8-step run: the default
    // schedule's warmup and cosine follow --steps, a constant LR does not.
    a.insert(a.end(), {"--save-every", "2", "--eval-every", "1000", "--lr-schedule", "constant"});
    return a;
  };
  const auto full = train(args_for(dir.file("full"), 8));
  REQUIRE_MESSAGE(full.exit_code == 0, full.err);

  SUBCASE("a file that may not grow (RLIMIT_FSIZE): EFBIG at step 6's checkpoint") {
    const std::string out = dir.file("limited");
    REQUIRE(train(args_for(out, 4)).exit_code == 0);  // checkpoints at steps 2 and 4
    auto more = args_for(out, 8);
    more.push_back("--resume");
    rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    rlimit small = old;
    small.rlim_cur = 1 << 20;  // a checkpoint of the tiny model is ~10 MB; metrics and config stay below
    const auto previous = std::signal(SIGXFSZ, SIG_IGN);  // inherited: writes fail with EFBIG instead
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    const auto stopped = train(more);
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, previous);
    CHECK(stopped.exit_code == 1);
    CHECK(stopped.err.find("cannot write '" + out + "/checkpoints/.tmp-global_step6/state.rank0.safetensors'") !=
          std::string::npos);
    CHECK(stopped.err.find("File too large") != std::string::npos);
    const auto [latest, tmp_left] = checkpoints_of(out);
    CHECK(latest == "global_step4");
    CHECK_FALSE(tmp_left);
    // Resumed with room again: the uninterrupted run's losses, bit for bit.
    const auto resumed = train(more);
    REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.err);
    CHECK(losses_from(out, 0) == losses_from(dir.file("full"), 0));
  }

  SUBCASE("a full filesystem (tiny tmpfs): ENOSPC at step 4's checkpoint") {
    const std::string mnt = dir.file("tiny");
    std::filesystem::create_directory(mnt);
    if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=14m") != 0) {
      MESSAGE("skipped: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN); the RLIMIT_FSIZE case covers it");
      return;
    }
    struct Unmount {
      std::string dir;
      ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }  // also when a REQUIRE ends the case early
    } unmount{mnt};
    const std::string out = mnt + "/out";
    const auto stopped = train(args_for(out, 8));  // step 2's checkpoint fits, step 4's does not
    CHECK(stopped.exit_code == 1);
    CHECK(stopped.err.find("cannot write '" + out + "/checkpoints/.tmp-global_step4/") != std::string::npos);
    CHECK(stopped.err.find("No space left on device (ENOSPC)") != std::string::npos);
    CHECK(stopped.err.find("free some space") != std::string::npos);
    const auto [latest, tmp_left] = checkpoints_of(out);
    CHECK(latest == "global_step2");
    CHECK_FALSE(tmp_left);  // the unfinished checkpoint's space is given back
    // Moved to a disk with room, the run resumes from step 2 to the uninterrupted losses.
    const std::string moved = dir.file("moved");
    REQUIRE(std::system(("cp -r '" + out + "' '" + moved + "'").c_str()) == 0);
    auto resume = args_for(moved, 8);
    resume.push_back("--resume");
    const auto resumed = train(resume);
    REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.err);
    CHECK(losses_from(moved, 0) == losses_from(dir.file("full"), 0));
  }
}

TEST_CASE("zinf export: a path that is not a checkpoint is refused") {
  TempDir dir;
  const auto r = run_zinf({"export", dir.path(), dir.file("x")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("is not a zinf checkpoint") != std::string::npos);
}

namespace {

// The master weights of a one-rank checkpoint: its params tensor, the flat vector.
std::vector<float> master_weights(const std::string& checkpoint) {
  const zinf::hf::SafetensorsReader r(checkpoint + "/state.rank0.safetensors");
  std::vector<float> p(std::size_t(r.entry("params").end - r.entry("params").begin) / 4);
  r.read("params", p.data(), p.size() * 4);
  return p;
}

bool is_conv1d(const std::string& name) {
  for (const char* s : {"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"})
    if (name.size() >= std::strlen(s) && name.compare(name.size() - std::strlen(s), std::string::npos, s) == 0)
      return true;
  return false;
}

// Checks an exported single-file model against the flat master weights: its
// tensors, in file order, tile the flat vector (the layout has no gaps and a
// tied head is not written), GPT-2 Conv1D weights transposed to [in, out],
// values bit for bit (fp32) or as hf::dtype rounds them (bf16). Returns the
// elements checked.
std::size_t check_against_master(const std::string& model_dir, const std::vector<float>& master, bool gpt2) {
  const zinf::hf::SafetensorsReader r(model_dir + "/model.safetensors");
  std::size_t checked = 0;
  for (const auto& [name, e] : r.tensors()) {
    CAPTURE(name);
    const zinf::hf::Dtype dt = zinf::hf::dtype_of(e.dtype, name);
    const std::int64_t esize = std::int64_t(zinf::hf::element_bytes(dt)), n = (e.end - e.begin) / esize;
    const std::int64_t offset = e.begin / esize;  // the flat offset: file order is layout order
    std::vector<char> raw(std::size_t(e.end - e.begin));
    r.read(name, raw.data(), raw.size());
    const bool t = gpt2 && is_conv1d(name);
    const std::int64_t hf_rows = e.shape[0], hf_cols = n / hf_rows;  // t: HF [in, out] of zinf's [out, in]
    bool same = true;
    for (std::int64_t j = 0; j < n; ++j) {
      // HF element j = (row i, col o); zinf's flat element is o * in + i when transposed.
      const std::int64_t flat = t ? (j % hf_cols) * hf_rows + j / hf_cols : j;
      const float want = master.at(std::size_t(offset + flat));
      if (dt == zinf::hf::Dtype::kF32) {
        same = same && std::memcmp(raw.data() + 4 * j, &want, 4) == 0;
      } else {
        std::uint16_t got = 0;
        std::memcpy(&got, raw.data() + 2 * j, 2);
        same = same && got == zinf::hf::bf16_from_float(want);
      }
    }
    CHECK(same);
    checked += std::size_t(n);
  }
  return checked;
}

}  // namespace

TEST_CASE("zinf export: a trained GPT-2 and Llama run's checkpoint, fp32 bit for bit and bf16 rounded") {
  TempDir dir;
  for (const bool gpt2 : {true, false}) {
    CAPTURE(gpt2);
    const std::string out = dir.file(gpt2 ? "gpt2" : "llama");
    std::vector<std::string> args = quick_args(out, 3);
    if (!gpt2) args.insert(args.end(), {"--model-type", "llama", "--kv-heads", "2"});
    args.insert(args.end(), {"--precision", "bf16"});
    const auto r = train(args);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const std::vector<float> master = master_weights(out + "/checkpoints/global_step3");

    const auto f32 = run_zinf({"export", out, out + "-fp32", "--dtype", "fp32"});
    REQUIRE_MESSAGE(f32.exit_code == 0, f32.err);
    CHECK(check_against_master(out + "-fp32", master, gpt2) == master.size());
    const json config = json::parse(read_text(out + "-fp32/config.json"));
    CHECK(config["architectures"][0] == (gpt2 ? "GPT2LMHeadModel" : "LlamaForCausalLM"));
    CHECK(config["torch_dtype"] == "float32");
    if (!gpt2) CHECK(config["num_key_value_heads"] == 2);

    // The default: the run's precision, bf16 (the run's own model/ is the same).
    const auto b16 = run_zinf({"export", out + "/checkpoints", out + "-bf16"});
    REQUIRE_MESSAGE(b16.exit_code == 0, b16.err);
    CHECK(check_against_master(out + "-bf16", master, gpt2) == master.size());
    CHECK(read_text(out + "-bf16/model.safetensors") == read_text(out + "/model/model.safetensors"));
    CHECK(json::parse(read_text(out + "-bf16/config.json"))["torch_dtype"] == "bfloat16");
  }

  // Small shards: the index names every tensor, the files hold them all.
  const std::string sharded = dir.file("sharded");
  const auto s = run_zinf({"export", dir.file("llama"), sharded, "--max-shard-size", "100KB"});
  REQUIRE_MESSAGE(s.exit_code == 0, s.err);
  const json index = json::parse(read_text(sharded + "/model.safetensors.index.json"));
  std::size_t tensors = 0;
  for (const auto& [name, file] : index["weight_map"].items()) {
    CAPTURE(name);
    const zinf::hf::SafetensorsReader r(sharded + "/" + file.get<std::string>());
    CHECK(r.tensors().count(name) == 1);
    ++tensors;
  }
  CHECK(tensors == zinf::hf::SafetensorsReader(dir.file("llama-bf16/model.safetensors")).tensors().size());
  CHECK_FALSE(index["weight_map"].contains("lm_head.weight"));  // the head is tied (no flag unties it): not written
  CHECK(json::parse(read_text(sharded + "/config.json"))["tie_word_embeddings"] == true);
  CHECK(index["weight_map"]["model.embed_tokens.weight"].get<std::string>().rfind("model-00001-of-000", 0) == 0);
  CHECK(index["metadata"]["total_size"] == 2 * index["metadata"]["total_parameters"].get<std::int64_t>());  // bf16
}

TEST_CASE("zinf export: an existing OUT_DIR, a bad --dtype and a bad --max-shard-size are refused, naming them") {
  TempDir dir;
  const std::string out = dir.file("run");
  const auto r = train(quick_args(out, 1));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::filesystem::create_directories(dir.file("taken"));
  write_text(dir.file("taken/notes.txt"), "mine");
  auto e = run_zinf({"export", out, dir.file("taken")});
  CHECK(e.exit_code == 2);
  CHECK(e.err.find("'" + dir.file("taken") + "' already exists and is not empty") != std::string::npos);
  CHECK(read_text(dir.file("taken/notes.txt")) == "mine");

  e = run_zinf({"export", out, dir.file("m"), "--dtype", "int4"});
  CHECK(e.exit_code == 2);
  CHECK(e.err.find("dtype 'int4' is not supported") != std::string::npos);
  CHECK(e.err.find("bf16, fp16, fp32") != std::string::npos);

  for (const char* bad : {"5XB", "-1", "0", "big"}) {
    CAPTURE(bad);
    e = run_zinf({"export", out, dir.file("m"), "--max-shard-size", bad});
    CHECK(e.exit_code == 2);
    CHECK(e.err.find(std::string("--max-shard-size '") + bad + "' is not a size") != std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(dir.file("m")));
}

TEST_CASE("zinf train --resume past a finished run replaces its model/ with the new final model") {
  TempDir dir;
  const std::string out = dir.file("run");
  const auto first = train(quick_args(out, 2));
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  const std::string two = read_text(out + "/model/model.safetensors");
  auto more = quick_args(out, 3);
  more.push_back("--resume");
  const auto second = train(more);
  REQUIRE_MESSAGE(second.exit_code == 0, second.err);
  const auto e = run_zinf({"export", out + "/checkpoints/global_step3", dir.file("three")});
  REQUIRE_MESSAGE(e.exit_code == 0, e.err);
  CHECK(read_text(out + "/model/model.safetensors") == read_text(dir.file("three/model.safetensors")));
  CHECK(read_text(out + "/model/model.safetensors") != two);
  for (const auto& entry : std::filesystem::directory_iterator(out)) {
    CAPTURE(entry.path().string());
    CHECK(entry.path().filename().string().rfind("model.", 0) != 0);  // no model.tmp.<pid> / model.old.<pid> left
  }
}
