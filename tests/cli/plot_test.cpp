// cli: `zinf plot` end to end in a real browser. A run directory (a short CPU
// run, plus one written by hand with the fields only engine runs have: bytes
// per step, NVMe GB/s, the timeline, a loss scale, and a cut last line as a
// running job leaves it) becomes report.html; headless chromium renders it
// and dumps the DOM, whose #zinf-plot-check must report no script errors and
// exactly metrics.jsonl's points for every chart; a screenshot is a PNG.
// Without chromium the test fails saying to install it (tools/setup.sh),
// unless ZINF_SKIP_BROWSER_TESTS=1.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/test_util.h"

using nlohmann::json;
using zinf::test::read_text;
using zinf::test::run_program;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

std::string find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (std::filesystem::exists(p)) return p;
  return "";
}

bool skip_browser() {
  const char* v = std::getenv("ZINF_SKIP_BROWSER_TESTS");
  return v && std::string(v) == "1";
}

// The check object the page wrote, from chromium's --dump-dom.
json rendered_check(const std::string& chromium, const std::string& html, const std::string& profile) {
  const auto r = run_program(chromium, {"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + profile,
                                        "--dump-dom", "file://" + html});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const std::string open = "<pre id=\"zinf-plot-check\">";
  const auto at = r.out.find(open);
  REQUIRE(at != std::string::npos);
  const auto end = r.out.find("</pre>", at);
  REQUIRE(end != std::string::npos);
  return json::parse(r.out.substr(at + open.size(), end - at - open.size()));
}

const char* const kCharts[][2] = {
    {"loss", "loss"},           {"loss", "val_loss"},     {"throughput", "tokens_per_s"}, {"tflops", "tflops"},
    {"mfu", "mfu"},             {"memory", "peak_gpu_bytes"}, {"memory", "rss_bytes"},  {"memory", "peak_rss_bytes"},
    {"io", "h2d_bytes"},        {"io", "d2h_bytes"},      {"io", "nvme_read_bytes_step"}, {"io", "nvme_write_bytes_step"},
    {"nvme_bandwidth", "nvme_gbps"}, {"loss_scale", "loss_scale"}, {"timeline_parts", "timeline.h2d_s"},
    {"timeline_parts", "timeline.optimizer_s"}, {"timeline_parts", "timeline.nvme_wait_s"},
    {"grad_norm", "grad_norm"}};

const json* field(const json& line, const std::string& path) {
  const json* v = &line;
  std::istringstream parts(path);
  for (std::string p; std::getline(parts, p, '.');) {
    if (!v->is_object() || !v->contains(p)) return nullptr;
    v = &(*v)[p];
  }
  return v->is_number() ? v : nullptr;
}

// Every chart series the page drew equals metrics.jsonl's points; returns how many series there were.
int check_against(const json& check, const std::vector<json>& lines) {
  CHECK(check.at("errors").empty());
  int series = 0;
  for (const auto& c : kCharts) {
    json want = json::array();
    for (const json& l : lines)
      if (const json* v = field(l, c[1])) want.push_back({l.at("step"), *v});
    INFO(c[0] << " / " << c[1]);
    if (want.empty()) {
      CHECK_FALSE((check["charts"].contains(c[0]) && check["charts"][c[0]].contains(c[1])));
      continue;
    }
    REQUIRE(check["charts"].contains(c[0]));
    CHECK(check["charts"][c[0]][c[1]] == want);
    ++series;
  }
  return series;
}

std::vector<json> complete_lines(const std::string& path) {
  std::vector<json> lines;
  std::istringstream in(read_text(path));
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) break;
    lines.push_back(j);
  }
  return lines;
}

}  // namespace

TEST_CASE("zinf plot: the page renders in headless chromium without errors and draws metrics.jsonl's points") {
  const std::string chromium = find_chromium();
  if (chromium.empty()) {
    if (skip_browser()) return;
    FAIL("chromium is not installed: install it (tools/setup.sh lists it; Debian: apt-get install chromium) or set "
         "ZINF_SKIP_BROWSER_TESTS=1");
  }
  TempDir dir;
  // 1. a real CPU run
  const std::string run = dir.file("run");
  auto r = run_zinf({"train", "--device", "cpu", "--model", "tiny", "--seq-len", "32", "--batch-size", "2", "--steps",
                     "3", "--output-dir", run, "--no-save"},
                    {{"OMP_NUM_THREADS", "1"}});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  r = run_zinf({"plot", run});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == run + "/report.html\n");
  const json real = rendered_check(chromium, run + "/report.html", dir.file("profile"));
  CHECK(check_against(real, complete_lines(run + "/metrics.jsonl")) == 9);

  // 2. an engine run's fields, a ds_config.json, and a running job's cut last line
  const std::string eng = dir.file("engine");
  std::filesystem::create_directories(eng);
  std::string text;
  for (int s = 1; s <= 4; ++s) {
    json l = {{"step", s}, {"loss", 6.0 - s}, {"lr", 1e-4}, {"tokens_per_s", 1000.0 * s}, {"tflops", 0.5 * s},
              {"mfu", 0.01 * s}, {"peak_gpu_bytes", 1 << 20}, {"rss_bytes", 3 << 20}, {"peak_rss_bytes", 4 << 20},
              {"h2d_bytes", 100 * s}, {"d2h_bytes", 50 * s}, {"nvme_read_bytes_step", 7 * s},
              {"nvme_write_bytes_step", 9 * s}, {"nvme_gbps", 1.5 + s}, {"loss_scale", 65536},
              {"grad_norm", 1.0 / s},
              {"timeline", {{"step_s", 0.25 * s + 0.125}, {"compute_s", 0.25 * s}, {"gpu_idle_s", 0.125}, {"h2d_s", 0.0625},
                            {"optimizer_s", 0.5}, {"nvme_wait_s", 0.03125 * s}}}};
    if (s == 4) l["val_loss"] = 2.5;
    text += l.dump() + "\n";
  }
  text += R"({"step": 5, "loss": 1.)";  // cut mid-write
  write_text(eng + "/metrics.jsonl", text);
  write_text(eng + "/ds_config.json", R"({"train_batch_size": 8, "zero_optimization": {"stage": 3}})");
  write_text(eng + "/summary.json", R"({"steps": 4, "peak_gpu_bytes": 1048576})");
  const std::string html = dir.file("out/page.html");
  std::filesystem::create_directories(dir.file("out"));
  r = run_zinf({"plot", eng, "--output", html});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json check = rendered_check(chromium, html, dir.file("profile"));
  const auto lines = complete_lines(eng + "/metrics.jsonl");
  REQUIRE(lines.size() == 4);
  CHECK(check_against(check, lines) == 18);
  CHECK(check["charts"]["timeline"].size() == 2);  // compute + idle stack to the step; the rest overlap
  for (const char* k : {"compute_s", "gpu_idle_s"}) {
    json want = json::array();
    for (const json& l : lines) want.push_back({l["step"], l["timeline"][k]});
    CHECK(check["charts"]["timeline"][std::string("timeline.") + k] == want);
  }
  const std::string page = read_text(html);
  CHECK(page.find("\"stage\":3") != std::string::npos);  // the configuration is on the page
  CHECK(page.find("http") == page.find("http://www.w3.org/2000/svg"));  // no other URL: nothing fetched

  // 3. a screenshot is a non-empty PNG
  const std::string png = dir.file("shot.png");
  r = run_program(chromium, {"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + dir.file("profile"),
                             "--screenshot=" + png, "--window-size=1280,2000", "file://" + html});
  REQUIRE(std::filesystem::exists(png));
  const std::string bytes = read_text(png);
  CHECK(bytes.size() > 10000);
  CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST_CASE("zinf plot: a directory without metrics.jsonl is a usage error naming it") {
  TempDir dir;
  const auto r = run_zinf({"plot", dir.path()});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("'" + dir.path() + "' has no metrics.jsonl") != std::string::npos);
}
