// zinf::monitor — DeepSpeed's csv_monitor files.
// Implements: CsvMonitor, one CSV file per metric in its directory, as
// deepspeed/monitor/csv_monitor.py writes them: the file is the tag with '/'
// and ' ' replaced by '_' plus ".csv"; the first row written by a run is the
// header "step,<last '/' part of the tag>", then one "step,value" row per
// event, appended (Python's csv writer: rows end in "\r\n"). Values are
// printed as metrics.jsonl prints them (shortest round-trip form).
#pragma once

#include <cstdint>
#include <set>
#include <string>

namespace zinf::monitor {

class CsvMonitor {
 public:
  explicit CsvMonitor(std::string dir);  // creates dir
  void add_scalar(const std::string& tag, double value, std::int64_t step);
  const std::string& dir() const { return dir_; }

  static std::string file_name(const std::string& tag);  // "Train/Samples/lr" -> "Train_Samples_lr.csv"

 private:
  std::string dir_;
  std::set<std::string> started_;  // files this run has written a header to
};

}  // namespace zinf::monitor
