// zinf::monitor — DeepSpeed-format CSV files, one per metric.
#include "monitor/csv_monitor.h"

#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"

namespace zinf::monitor {

CsvMonitor::CsvMonitor(std::string dir) : dir_(std::move(dir)) { fs::make_dirs(dir_); }

std::string CsvMonitor::file_name(const std::string& tag) {
  std::string name = tag;
  for (char& c : name)
    if (c == '/' || c == ' ') c = '_';
  return name + ".csv";
}

void CsvMonitor::add_scalar(const std::string& tag, double value, std::int64_t step) {
  const std::string name = file_name(tag);
  const std::string path = dir_ + "/" + name;
  std::string text;
  if (started_.insert(name).second) {
    const auto slash = tag.rfind('/');
    text += "step," + (slash == std::string::npos ? tag : tag.substr(slash + 1)) + "\r\n";
  }
  text += std::to_string(step) + "," + nlohmann::json(value).dump() + "\r\n";
  std::FILE* f = std::fopen(path.c_str(), "ab");
  bool ok = f && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const int err = errno;
  if (f) ok = std::fclose(f) == 0 && ok;
  if (!ok)
    throw Error("cannot append to the csv_monitor file '" + path + "': " + errno_text(err),
                "check that csv_monitor.output_path is writable and has space");
}

}  // namespace zinf::monitor
