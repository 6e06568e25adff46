// Test support: metrics.jsonl readers shared by the CLI and GPU suites.
#include "support/run_metrics.h"

#include <sstream>

#include "support/test_util.h"

namespace zinf::test {

std::vector<nlohmann::json> metrics_lines(const std::string& out_dir) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(read_text(out_dir + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

std::vector<double> step_losses(const std::string& out_dir) {
  std::vector<double> losses;
  for (const nlohmann::json& m : metrics_lines(out_dir))
    if (m.contains("loss")) losses.push_back(m["loss"].get<double>());
  return losses;
}

}  // namespace zinf::test
