// zinf::train — metrics log and progress line.
#include "train/metrics.h"

#include <unistd.h>

#include <torch/torch.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/units.h"
#include "hw/machine.h"
#include "log/log.h"
#include "monitor/peak_flops.h"

namespace zinf::train {

MetricsLog::MetricsLog(std::string path, std::int64_t keep_through, const monitor::MonitorOptions& monitors)
    : path_(std::move(path)) {
  std::string kept;
  if (keep_through >= 0 && fs::exists(path_)) {
    std::istringstream in(fs::read_file(path_));
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      try {
        const auto j = config::Json::parse(line);
        if (j.value("step", std::int64_t(-1)) <= keep_through) kept += line + "\n";
      } catch (const std::exception&) {
        break;  // a line cut by a kill: everything after it is recomputed
      }
    }
  }
  fs::write_file_atomic(path_, kept);
  file_ = std::fopen(path_.c_str(), "a");
  if (!file_) throw Error("cannot append to '" + path_ + "': " + errno_text(errno), "check the output directory");
  if (monitors.any()) monitor_ = std::make_unique<monitor::Monitor>(monitors);
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::append(const config::Json& line, std::int64_t samples) {
  const std::string text = line.dump() + "\n";
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0)
    throw Error("cannot append to '" + path_ + "': " + errno_text(errno), "free some space in the output directory");
  if (monitor_) monitor_->write_step(line, samples);
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto total = static_cast<long long>(s + 0.5);
  char buf[32];
  if (total >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", total / 3600, (total % 3600) / 60);
  else if (total >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", total / 60, total % 60);
  else
    std::snprintf(buf, sizeof buf, "%llds", total);
  return buf;
}

namespace {
bool stderr_is_tty() {
  static const bool tty = ::isatty(2) == 1;
  return tty;
}
bool line_open = false;
}  // namespace

void report_progress(const Progress& p, std::int64_t log_every) {
  char buf[256];
  int n = std::snprintf(buf, sizeof buf, "step %lld/%lld | loss %.4f | lr %.3g | %.0f tok/s",
                        static_cast<long long>(p.step), static_cast<long long>(p.total), p.loss, p.lr, p.tokens_per_s);
  if (p.tflops > 0) n += std::snprintf(buf + n, sizeof buf - n, " | %.1f TFLOP/s", p.tflops);
  if (p.mfu > 0) n += std::snprintf(buf + n, sizeof buf - n, " | MFU %.1f%%", 100 * p.mfu);
  if (p.h2d_bytes > 0 || p.d2h_bytes > 0)
    n += std::snprintf(buf + n, sizeof buf - n, " | h2d %s d2h %s", format_bytes(p.h2d_bytes).c_str(),
                       format_bytes(p.d2h_bytes).c_str());
  if (p.nvme_read_bytes > 0 || p.nvme_write_bytes > 0)
    n += std::snprintf(buf + n, sizeof buf - n, " | nvme r %s w %s", format_bytes(p.nvme_read_bytes).c_str(),
                       format_bytes(p.nvme_write_bytes).c_str());
  if (p.val_loss >= 0) n += std::snprintf(buf + n, sizeof buf - n, " | val %.4f", p.val_loss);
  std::snprintf(buf + n, sizeof buf - n, " | ETA %s", format_duration(p.eta_s).c_str());
  if (stderr_is_tty()) {
    std::fprintf(stderr, "\r\033[K%s", buf);
    std::fflush(stderr);
    line_open = true;
    if (p.val_loss >= 0) finish_progress();  // keep validation results on screen
  } else if (p.step % log_every == 0 || p.step == p.total || p.val_loss >= 0) {
    log::info(buf);
  }
}

DevicePeak device_peak(bool cuda, int device_index, const std::string& precision) {
  if (cuda) {
    for (const hw::Gpu& g : hw::detect_gpus())
      if (g.index == device_index)
        if (const auto known = monitor::known_peak_tflops(g.name, precision))
          return {*known, "table: " + g.name + " " + precision};
  }
  // One short timed matmul in the training precision (CPU: fp32 unless bf16).
  const torch::Device dev = cuda ? torch::Device(torch::kCUDA, device_index) : torch::Device(torch::kCPU);
  const auto dtype = precision == "bf16" ? torch::kBFloat16 : precision == "fp16" && cuda ? torch::kFloat16
                                                                                          : torch::kFloat32;
  const std::int64_t n = cuda ? 8192 : 256;
  const auto opts = torch::TensorOptions().device(dev).dtype(dtype);
  const torch::Tensor a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
  const auto sync = [&] { (void)a.sum().item<float>(); };  // waits for the device (no CUDA header needed)
  torch::Tensor c = torch::matmul(a, b);  // warm-up
  sync();
  const int reps = cuda ? 10 : 8;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) c = torch::matmul(a, b);
  (void)c.sum().item<float>();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const char* dname = dtype == torch::kBFloat16 ? "bf16" : dtype == torch::kFloat16 ? "fp16" : "fp32";
  return {2.0 * double(n) * double(n) * double(n) * reps / s / 1e12,
          "measured: " + std::to_string(n) + "x" + std::to_string(n) + " " + dname + " matmul on " +
              (cuda ? "cuda:" + std::to_string(device_index) : std::string("cpu"))};
}

void finish_progress() {
  if (line_open) std::fprintf(stderr, "\n");
  line_open = false;
}

}  // namespace zinf::train
