// Test support: a training run's metrics.jsonl, read back.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace zinf::test {

// Every non-empty line of OUT_DIR/metrics.jsonl, parsed.
std::vector<nlohmann::json> metrics_lines(const std::string& out_dir);
// The "loss" of every line that has one, in step order.
std::vector<double> step_losses(const std::string& out_dir);

}  // namespace zinf::test
