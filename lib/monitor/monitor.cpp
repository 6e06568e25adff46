// zinf::monitor — metrics line to monitor scalars.
#include "monitor/monitor.h"

#include "monitor/csv_monitor.h"
#include "monitor/tfevents.h"

namespace zinf::monitor {

namespace {

void flatten(const std::string& prefix, const nlohmann::json& j, std::int64_t step, std::vector<Scalar>& out) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto& v = it.value();
    if (v.is_object())
      flatten(prefix + it.key() + "/", v, step, out);
    else if (v.is_number())
      out.push_back({prefix + it.key(), v.get<double>(), step});
  }
}

}  // namespace

std::vector<Scalar> scalars_of(const nlohmann::json& line, std::int64_t samples) {
  const std::int64_t step = line.at("step").get<std::int64_t>();
  std::vector<Scalar> out;
  nlohmann::json rest = line;
  // DeepSpeed's engine: (name, value, self.global_samples).
  const std::pair<const char*, const char*> deepspeed[] = {
      {"loss", "Train/Samples/train_loss"}, {"lr", "Train/Samples/lr"}, {"loss_scale", "Train/Samples/loss_scale"}};
  for (const auto& [key, tag] : deepspeed) {
    if (line.contains(key) && line[key].is_number()) out.push_back({tag, line[key].get<double>(), samples});
    rest.erase(key);
  }
  rest.erase("step");
  flatten("zinf/", rest, step, out);
  return out;
}

Monitor::Monitor(const MonitorOptions& options) {
  if (!options.tensorboard_dir.empty()) events_ = std::make_unique<EventFileWriter>(options.tensorboard_dir);
  if (!options.csv_dir.empty()) csv_ = std::make_unique<CsvMonitor>(options.csv_dir);
}

Monitor::~Monitor() = default;

void Monitor::write_step(const nlohmann::json& line, std::int64_t samples) {
  for (const Scalar& s : scalars_of(line, samples)) {
    if (events_) events_->add_scalar(s.tag, s.value, s.x);
    if (csv_) csv_->add_scalar(s.tag, s.value, s.x);
  }
}

std::string Monitor::tensorboard_file() const { return events_ ? events_->path() : std::string(); }

}  // namespace zinf::monitor
