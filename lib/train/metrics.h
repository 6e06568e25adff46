// zinf::train — metrics.jsonl and summary.json.
// Implements: MetricsLog, one JSON object per optimizer step appended to
// <output>/metrics.jsonl and flushed, so a killed run leaves every finished
// step on disk; on resume the lines after the checkpoint's step are dropped
// (they are recomputed identically). Each line also goes to the monitors
// (TensorBoard events, DeepSpeed CSV files: lib/monitor). Also the progress line: `\r`-updated on
// a terminal, plain log lines otherwise.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "config/json.h"
#include "monitor/monitor.h"

namespace zinf::train {

class MetricsLog {
 public:
  // Keeps the existing lines whose "step" <= keep_through (none when < 0).
  // `monitors` are opened too (none by default).
  MetricsLog(std::string path, std::int64_t keep_through, const monitor::MonitorOptions& monitors = {});
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Appends `line` (it has "step") and writes it to the monitors; `samples`
  // is the global sample count after the step (DeepSpeed's x axis).
  void append(const config::Json& line, std::int64_t samples);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  std::unique_ptr<monitor::Monitor> monitor_;
};

struct Progress {
  std::int64_t step = 0, total = 0;   // optimizer steps
  double loss = 0, lr = 0, tokens_per_s = 0;
  double eta_s = 0;                   // seconds
  double val_loss = -1;               // < 0: none this step
  double tflops = 0;                  // 0: not reported (CPU)
  double mfu = 0;                     // model TFLOP/s over the device's peak; 0: not reported
  // Bytes this step moved between tiers (offloaded runs; 0: none).
  double h2d_bytes = 0, d2h_bytes = 0, nvme_read_bytes = 0, nvme_write_bytes = 0;
};

// The peak MFU divides by: a known GPU's dense peak for the precision
// ("table: NVIDIA H100 80GB HBM3 bf16"), else one short timed matmul on the
// device at startup ("measured: 2048x2048 fp32 matmul on cpu").
struct DevicePeak {
  double tflops = 0;
  std::string source;
};
// cuda false: the CPU. precision "bf16" | "fp16" | "fp32".
DevicePeak device_peak(bool cuda, int device_index, const std::string& precision);

// Prints a progress line: rewritten in place on a terminal (stderr is a TTY),
// one log line every `log_every` steps otherwise.
void report_progress(const Progress& p, std::int64_t log_every);
// Ends the in-place line on a terminal.
void finish_progress();

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

}  // namespace zinf::train
