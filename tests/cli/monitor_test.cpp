// cli: `zinf train --tensorboard-dir` and a csv_monitor section on a 5-step
// CPU run: the event file read back by the independent reader (both CRCs
// checked) has every scalar of metrics.jsonl with its value, under DeepSpeed's
// Train/Samples names against the sample count and zinf/ names against the
// step; the CSV files hold the same numbers; tensorboard and csv_monitor no
// longer warn as inert, wandb and comet still do. MFU (over the CPU's
// measured matmul rate) is in the progress line and metrics.jsonl.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/run_metrics.h"
#include "support/test_util.h"
#include "support/tfevents_reader.h"

using nlohmann::json;
using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

using zinf::test::metrics_lines;

// (tag, x) -> value, for every number of every line, as the monitors must name them.
std::map<std::pair<std::string, std::int64_t>, double> expected_scalars(const std::vector<json>& lines,
                                                                        std::int64_t batch) {
  std::map<std::pair<std::string, std::int64_t>, double> want;
  for (const json& l : lines) {
    const std::int64_t step = l.at("step");
    for (auto it = l.begin(); it != l.end(); ++it) {
      const std::string& k = it.key();
      if (k == "step") continue;
      if (k == "loss") want[{"Train/Samples/train_loss", step * batch}] = it->get<double>();
      else if (k == "lr") want[{"Train/Samples/lr", step * batch}] = it->get<double>();
      else if (k == "loss_scale") want[{"Train/Samples/loss_scale", step * batch}] = it->get<double>();
      else if (it->is_object()) {
        for (auto sub = it->begin(); sub != it->end(); ++sub)
          if (sub->is_number()) want[{"zinf/" + k + "/" + sub.key(), step}] = sub->get<double>();
      } else if (it->is_number()) want[{"zinf/" + k, step}] = it->get<double>();
    }
  }
  return want;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("zinf train --tensorboard-dir and csv_monitor write every metrics.jsonl value, as DeepSpeed names them") {
  TempDir dir;
  const std::string out = dir.file("run"), tb = dir.file("tb");
  write_text(dir.file("ds.json"), R"({"csv_monitor": {"enabled": true, "output_path": ")" + dir.file("csv") +
                                      R"(", "job_name": "tiny"}, "train_micro_batch_size_per_gpu": 4})");
  const auto r = run_zinf({"train", "--device", "cpu", "--model", "tiny", "--seq-len", "32", "--steps", "5",
                           "--output-dir", out, "--no-save", "--config", dir.file("ds.json"), "--tensorboard-dir", tb,
                           "--seed", "3"},
                          {{"OMP_NUM_THREADS", "1"}});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("tensorboard") == std::string::npos);
  CHECK(r.err.find("csv_monitor") == std::string::npos);

  const auto lines = metrics_lines(out);
  REQUIRE(lines.size() == 5);
  const auto want = expected_scalars(lines, 4);
  REQUIRE(want.count({"Train/Samples/train_loss", 20}) == 1);  // 5 steps x 4 samples
  REQUIRE(want.count({"zinf/tokens_per_s", 5}) == 1);
  REQUIRE(want.count({"zinf/mfu", 5}) == 1);

  // MFU: the model's TFLOP/s over the CPU's measured matmul rate, said in the log and in every line.
  CHECK(r.err.find("MFU peak: ") != std::string::npos);
  CHECK(r.err.find("(measured: 256x256 fp32 matmul on cpu)") != std::string::npos);
  CHECK(r.err.find("| MFU ") != std::string::npos);
  for (const json& l : lines) {
    CHECK(l.at("peak_source") == "measured: 256x256 fp32 matmul on cpu");
    CHECK(l.at("peak_tflops").get<double>() > 0);
    CHECK(l.at("mfu").get<double>() == doctest::Approx(l.at("tflops").get<double>() / l.at("peak_tflops").get<double>()));
  }

  // TensorBoard: one event file, file_version first, then exactly the expected scalars.
  const auto tb_files = files_in(tb);
  REQUIRE(tb_files.size() == 1);
  CHECK(std::filesystem::path(tb_files[0]).filename().string().rfind("events.out.tfevents.", 0) == 0);
  const auto events = zinf::test::read_tfevents(read_text(tb_files[0]));
  REQUIRE(!events.empty());
  CHECK(events[0].file_version == "brain.Event:2");
  std::map<std::pair<std::string, std::int64_t>, float> got;
  for (std::size_t i = 1; i < events.size(); ++i)
    for (const auto& v : events[i].values) got[{v.tag, events[i].step}] = v.value;
  CHECK(got.size() == want.size());
  for (const auto& [key, value] : want) {
    INFO(key.first << " at " << key.second);
    REQUIRE(got.count(key) == 1);
    CHECK(got.at(key) == static_cast<float>(value));  // simple_value is a float32
  }

  // CSV: one file per tag under output_path/job_name, "step,value" rows equal to metrics.jsonl's numbers.
  std::map<std::pair<std::string, std::int64_t>, double> csv;
  for (const std::string& f : files_in(dir.file("csv/tiny"))) {
    std::istringstream in(read_text(f));
    std::string header;
    std::getline(in, header);
    CHECK(header.rfind("step,", 0) == 0);
    for (std::string row; std::getline(in, row);) {
      REQUIRE(!row.empty());
      CHECK(row.back() == '\r');
      const auto comma = row.find(',');
      csv[{std::filesystem::path(f).stem().string(), std::stoll(row.substr(0, comma))}] =
          std::stod(row.substr(comma + 1));
    }
  }
  CHECK(csv.size() == want.size());
  for (const auto& [key, value] : want) {
    std::string name = key.first;
    for (char& c : name)
      if (c == '/') c = '_';
    INFO(name << " at " << key.second);
    REQUIRE(csv.count({name, key.second}) == 1);
    CHECK(csv.at({name, key.second}) == value);  // printed in shortest round-trip form
  }
  CHECK(read_text(dir.file("csv/tiny/Train_Samples_lr.csv")).rfind("step,lr\r\n4,", 0) == 0);
}

TEST_CASE("tensorboard and csv_monitor sections are honoured without warnings; wandb and comet still warn as inert") {
  TempDir dir;
  write_text(dir.file("ds.json"), R"({"tensorboard": {"enabled": true, "output_path": "tb", "job_name": "j"},
    "csv_monitor": {"enabled": true}, "wandb": {"enabled": true}, "comet": {"enabled": true}})");
  const auto r = run_zinf({"config", "--config", dir.file("ds.json")});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("tensorboard") == std::string::npos);
  CHECK(r.err.find("csv_monitor") == std::string::npos);
  CHECK(r.err.find("wandb.enabled = true") != std::string::npos);
  CHECK(r.err.find("does not report to Weights & Biases") != std::string::npos);
  CHECK(r.err.find("comet.enabled = true") != std::string::npos);
  const json cfg = json::parse(r.out);
  CHECK(cfg["tensorboard"]["job_name"] == "j");
  CHECK(cfg["csv_monitor"]["job_name"] == "DeepSpeedJobName");
}

TEST_CASE("a tensorboard section with enabled true writes under output_path/job_name") {
  TempDir dir;
  write_text(dir.file("ds.json"), R"({"tensorboard": {"enabled": true, "output_path": ")" + dir.file("tbase") +
                                      R"(", "job_name": "exp1"}})");
  const auto r = run_zinf({"train", "--device", "cpu", "--model", "tiny", "--seq-len", "32", "--batch-size", "2",
                           "--steps", "2", "--output-dir", dir.file("run"), "--no-save", "--config", dir.file("ds.json")},
                          {{"OMP_NUM_THREADS", "1"}});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto files = files_in(dir.file("tbase/exp1"));
  REQUIRE(files.size() == 1);
  const auto events = zinf::test::read_tfevents(read_text(files[0]));
  int losses = 0;
  for (const auto& e : events)
    for (const auto& v : e.values) losses += v.tag == "Train/Samples/train_loss";
  CHECK(losses == 2);
}
