// zinf::monitor — the run's monitors behind one call per step.
// Implements: Monitor, which takes the JSON line metrics.jsonl got for a step
// and writes every number in it to the enabled monitors (TensorBoard, CSV):
// loss, lr and loss_scale under DeepSpeed's names "Train/Samples/train_loss",
// "Train/Samples/lr", "Train/Samples/loss_scale" against the global sample
// count, as DeepSpeed's engine logs them; every other number as "zinf/<key>"
// (objects flattened: "zinf/timeline/compute_s") against the step. Values are
// exactly metrics.jsonl's (TensorBoard stores them as float32).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace zinf::monitor {

class EventFileWriter;
class CsvMonitor;

struct MonitorOptions {
  std::string tensorboard_dir;  // "" = no TensorBoard events
  std::string csv_dir;          // "" = no CSV files
  bool any() const { return !tensorboard_dir.empty() || !csv_dir.empty(); }
};

struct Scalar {
  std::string tag;
  double value = 0;
  std::int64_t x = 0;  // samples for Train/Samples/*, the step otherwise
};

// The scalars a metrics line becomes (what write_step writes).
std::vector<Scalar> scalars_of(const nlohmann::json& line, std::int64_t samples);

class Monitor {
 public:
  explicit Monitor(const MonitorOptions& options);
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // `line` has "step"; `samples` is the global sample count after that step.
  void write_step(const nlohmann::json& line, std::int64_t samples);
  std::string tensorboard_file() const;  // "" when off

 private:
  std::unique_ptr<EventFileWriter> events_;
  std::unique_ptr<CsvMonitor> csv_;
};

}  // namespace zinf::monitor
