// unit/monitor: the Event protobuf bytes are protobuf's encoding, records read
// back through the independent test reader (tests/support/tfevents_reader)
// with both CRCs checked, a corrupted byte is caught, the event file is named
// and started as TensorFlow's, DeepSpeed's CSV layout, and which scalar each
// metrics field becomes.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/checksum.h"
#include "monitor/csv_monitor.h"
#include "monitor/monitor.h"
#include "monitor/peak_flops.h"
#include "monitor/tfevents.h"
#include "support/test_util.h"
#include "support/tfevents_reader.h"

using namespace zinf;
using zinf::test::read_text;
using zinf::test::TempDir;

namespace {
std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}
}  // namespace

TEST_CASE("a scalar Event is protobuf's encoding of wall_time, step and summary.value{tag, simple_value}") {
  // wall_time 1.5 (field 1, fixed64), step 3 (field 2, varint), summary (field 5)
  // = { value (field 1) = { tag "a" (field 1), simple_value 2.0f (field 2, fixed32) } }
  const std::string expected = bytes({0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x10, 0x03, 0x2A, 0x0A, 0x0A, 0x08, 0x0A,
                                      0x01, 'a', 0x15, 0x00, 0x00, 0x00, 0x40});
  CHECK(monitor::encode_scalar_event(1.5, 3, "a", 2.0f) == expected);
  // file_version (field 3) and a step that needs two varint bytes
  CHECK(monitor::encode_file_version_event(1.5, "v") == bytes({0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x1A, 0x01, 'v'}));
  CHECK(monitor::encode_scalar_event(0, 300, "", 0).substr(9, 3) == bytes({0x10, 0xAC, 0x02}));
}

TEST_CASE("masked CRC32C is TensorFlow's, and both CRCs of a record are checked by the independent reader") {
  CHECK(test::tf_crc32c("123456789") == 0xE3069283u);
  CHECK(io::crc32c("123456789", 9) == test::tf_crc32c("123456789"));
  CHECK(monitor::masked_crc32c("", 0) == 0xa282ead8u);  // crc32c("") = 0
  const std::string record = monitor::frame_record(monitor::encode_scalar_event(7.25, 42, "Train/Samples/lr", 1e-3f));
  auto events = test::read_tfevents(record);
  REQUIRE(events.size() == 1);
  CHECK(events[0].wall_time == 7.25);
  CHECK(events[0].step == 42);
  REQUIRE(events[0].values.size() == 1);
  CHECK(events[0].values[0].tag == "Train/Samples/lr");
  CHECK(events[0].values[0].value == 1e-3f);

  std::string bad = record;
  bad[14] ^= 0x01;  // a data byte
  CHECK_THROWS_WITH_AS(test::read_tfevents(bad), "record 0: data CRC mismatch", std::runtime_error);
  bad = record;
  bad[0] ^= 0x01;  // the length
  CHECK_THROWS_WITH_AS(test::read_tfevents(bad), "record 0: length CRC mismatch", std::runtime_error);
  CHECK_THROWS_WITH_AS(test::read_tfevents(record + record.substr(0, 20)), "record 1: truncated data",
                       std::runtime_error);
}

TEST_CASE("the event file is events.out.tfevents.<seconds>.<host>, starts with brain.Event:2, and is flushed per add") {
  TempDir dir;
  const std::string sub = dir.file("tb/job");
  const auto before = static_cast<long long>(std::time(nullptr));
  monitor::EventFileWriter w(sub);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string name = std::filesystem::path(w.path()).filename().string();
  const std::string prefix = "events.out.tfevents.";
  REQUIRE(name.rfind(prefix, 0) == 0);
  const long long secs = std::stoll(name.substr(prefix.size()));
  CHECK(secs >= before);
  CHECK(secs <= before + 5);
  CHECK(name == prefix + std::to_string(secs) + "." + host);
  w.add_scalar("zinf/tflops", 0.125, 1);
  w.add_scalar("zinf/tflops", 3.5, 2);
  const auto events = test::read_tfevents(read_text(w.path()));  // read while the writer is open
  REQUIRE(events.size() == 3);
  CHECK(events[0].file_version == "brain.Event:2");
  CHECK(events[0].values.empty());
  CHECK(events[1].step == 1);
  CHECK(events[2].values.at(0).value == 3.5f);
  CHECK(events[2].wall_time >= double(before));
}

TEST_CASE("CsvMonitor writes DeepSpeed's csv_monitor files: one per tag, header step,<last part>, rows step,value") {
  TempDir dir;
  {
    monitor::CsvMonitor csv(dir.file("out/job"));
    csv.add_scalar("Train/Samples/train_loss", 5.25, 8);
    csv.add_scalar("Train/Samples/train_loss", 0.1, 16);
    csv.add_scalar("zinf/step time", 2, 1);
  }
  CHECK(monitor::CsvMonitor::file_name("Train/Samples/lr") == "Train_Samples_lr.csv");
  CHECK(read_text(dir.file("out/job/Train_Samples_train_loss.csv")) == "step,train_loss\r\n8,5.25\r\n16,0.1\r\n");
  CHECK(read_text(dir.file("out/job/zinf_step_time.csv")) == "step,step time\r\n1,2.0\r\n");
  // a second run appends, with its own header, as DeepSpeed's does
  monitor::CsvMonitor again(dir.file("out/job"));
  again.add_scalar("zinf/step time", 3, 2);
  CHECK(read_text(dir.file("out/job/zinf_step_time.csv")) == "step,step time\r\n1,2.0\r\nstep,step time\r\n2,3.0\r\n");
}

TEST_CASE("a metrics line becomes DeepSpeed's Train/Samples scalars against samples and zinf/ ones against the step") {
  const nlohmann::json line = {{"step", 3},        {"loss", 2.5},          {"lr", 1e-4},
                               {"loss_scale", 1024}, {"skipped", false},    {"grad_norm", 0.75},
                               {"tokens", 768},     {"timeline", {{"compute_s", 0.5}, {"gpu_idle_s", 0.25}}}};
  const auto s = monitor::scalars_of(line, 96);
  std::map<std::string, std::pair<double, std::int64_t>> got;
  for (const auto& x : s) got[x.tag] = {x.value, x.x};
  CHECK(got.size() == 7);  // booleans are not scalars
  CHECK(got.at("Train/Samples/train_loss") == std::make_pair(2.5, std::int64_t(96)));
  CHECK(got.at("Train/Samples/lr") == std::make_pair(1e-4, std::int64_t(96)));
  CHECK(got.at("Train/Samples/loss_scale") == std::make_pair(1024.0, std::int64_t(96)));
  CHECK(got.at("zinf/grad_norm") == std::make_pair(0.75, std::int64_t(3)));
  CHECK(got.at("zinf/tokens") == std::make_pair(768.0, std::int64_t(3)));
  CHECK(got.at("zinf/timeline/compute_s") == std::make_pair(0.5, std::int64_t(3)));
  CHECK(got.at("zinf/timeline/gpu_idle_s") == std::make_pair(0.25, std::int64_t(3)));
}

TEST_CASE("known GPUs' dense peaks by CUDA device name and precision; unknown names and bf16 on V100 have none") {
  using monitor::known_peak_tflops;
  CHECK(known_peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.4);
  CHECK(known_peak_tflops("NVIDIA H200", "bf16") == 989.4);
  CHECK(known_peak_tflops("NVIDIA H100 PCIe", "fp16") == 756.5);
  CHECK(known_peak_tflops("NVIDIA H100 80GB HBM3", "fp32") == 66.9);
  CHECK(known_peak_tflops("NVIDIA A100-SXM4-80GB", "bf16") == 312.0);
  CHECK(known_peak_tflops("NVIDIA A100 80GB PCIe", "fp32") == 19.5);
  CHECK(known_peak_tflops("NVIDIA A10", "bf16") == 125.0);  // not A100's
  CHECK(known_peak_tflops("NVIDIA L40S", "bf16") == 362.05);
  CHECK(known_peak_tflops("NVIDIA L4", "bf16") == 121.0);   // not L40's
  CHECK(known_peak_tflops("NVIDIA GeForce RTX 4090", "bf16") == 165.2);
  CHECK(known_peak_tflops("Tesla V100-SXM2-16GB", "fp16") == 125.0);
  CHECK_FALSE(known_peak_tflops("Tesla V100-SXM2-16GB", "bf16").has_value());
  CHECK_FALSE(known_peak_tflops("NVIDIA Quadro P1000", "fp16").has_value());
  CHECK_FALSE(known_peak_tflops("", "fp32").has_value());
  CHECK(monitor::mfu(49.47, 989.4) == doctest::Approx(0.05));
  CHECK(monitor::mfu(1, 0) == 0);
}
