// bench: CPU Adam throughput against LibTorch and against host memory bandwidth.
// Implements: bench_cpu_adam, which measures for N parameters (default 100M)
//   - host memory bandwidth over as many bytes as one Adam step touches:
//     multi-threaded memcpy (read + write), STREAM triad, and an in-place
//     a = a*s + b (Adam's pattern); the bound uses the fastest of the three;
//   - zinf::optim::adam_step (fp32 or bf16 gradient, bf16 copy of the new
//     weights written out) on 1 thread and on all threads;
//   - LibTorch's torch::optim::AdamW on one flat tensor and on a list of
//     per-layer tensors (the C++ API has no foreach/fused path: it runs one
//     ATen op per line of the algorithm, per tensor);
// and prints params/s, the bandwidth bound (bandwidth / bytes touched per
// parameter) and the fraction of it reached, then one JSON line.
//
//   bench_cpu_adam [--n 100000000] [--steps 5] [--threads 0] [--isa auto] [--no-torch]
#include <torch/torch.h>
#include <torch/version.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "optim/cpu_adam.h"

namespace {

using zinf::ThreadPool;
using namespace zinf::optim;

// Bytes one Adam step must move per parameter: read master, m, v (4 each) and
// the gradient (4 fp32 / 2 bf16); write master, m, v (4 each) and the bf16
// copy of the new weights (2).
constexpr double kBytesFp32Grad = 4 + 4 + 4 + 4 + 4 + 4 + 4 + 2;  // 30
constexpr double kBytesBf16Grad = 4 + 4 + 4 + 2 + 4 + 4 + 4 + 2;  // 28

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds of `steps` calls after one warm-up call.
double median_seconds(int steps, const std::function<void(int)>& fn) {
  fn(0);
  std::vector<double> t;
  for (int s = 1; s <= steps; ++s) {
    const double t0 = now_s();
    fn(s);
    t.push_back(now_s() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown";
}

// Page-faults a buffer in parallel (first touch) so timing sees no faults.
template <class T>
void fill(std::vector<T>& x, T value, ThreadPool& pool) {
  pool.parallel_for(static_cast<std::int64_t>(x.size()), 1 << 18, [&](std::int64_t b, std::int64_t e) {
    std::fill(x.begin() + b, x.begin() + e, value);
  });
}

struct Bandwidth {
  double copy_gbs;   // memcpy: read + write bytes per second / 1e9
  double triad_gbs;  // STREAM triad a = b + s*c: 12 bytes per element (the
                     // write-allocate read of `a` is not counted, as in STREAM)
  double rmw_gbs;    // a = a*s + b: 12 bytes per element, all of them moved;
                     // the access pattern of Adam (in-place state + a stream)
  double best() const { return std::max({copy_gbs, triad_gbs, rmw_gbs}); }
};

Bandwidth measure_bandwidth(std::int64_t bytes, int steps, ThreadPool& pool) {
  Bandwidth bw{};
  {
    const std::int64_t half = bytes / 2;  // read half, write half
    std::vector<char> src(static_cast<std::size_t>(half)), dst(static_cast<std::size_t>(half));
    fill(src, char(1), pool);
    fill(dst, char(0), pool);
    const double t = median_seconds(steps, [&](int) {
      pool.parallel_for(half, 1 << 22, [&](std::int64_t b, std::int64_t e) {
        std::memcpy(dst.data() + b, src.data() + b, static_cast<std::size_t>(e - b));
      });
    });
    bw.copy_gbs = double(2 * half) / t / 1e9;
  }
  {
    const std::int64_t n = bytes / 12;
    std::vector<float> a(static_cast<std::size_t>(n)), b(static_cast<std::size_t>(n)), c(static_cast<std::size_t>(n));
    fill(a, 0.0f, pool);
    fill(b, 1.0f, pool);
    fill(c, 2.0f, pool);
    const float s = 3.0f;
    const double t = median_seconds(steps, [&](int) {
      pool.parallel_for(n, 1 << 16, [&](std::int64_t lo, std::int64_t hi) {
        float* __restrict pa = a.data();
        const float* __restrict pb = b.data();
        const float* __restrict pc = c.data();
        for (std::int64_t i = lo; i < hi; ++i) pa[i] = pb[i] + s * pc[i];
      });
    });
    bw.triad_gbs = double(12 * n) / t / 1e9;
    const double t_rmw = median_seconds(steps, [&](int) {
      pool.parallel_for(n, 1 << 16, [&](std::int64_t lo, std::int64_t hi) {
        float* __restrict pa = a.data();
        const float* __restrict pb = b.data();
        for (std::int64_t i = lo; i < hi; ++i) pa[i] = pa[i] * s + pb[i];
      });
    });
    bw.rmw_gbs = double(12 * n) / t_rmw / 1e9;
  }
  return bw;
}

double bench_zinf(std::int64_t n, int steps, ThreadPool& pool, bool bf16_grad) {
  std::vector<float> p(static_cast<std::size_t>(n)), m(static_cast<std::size_t>(n)), v(static_cast<std::size_t>(n));
  std::vector<float> g32;
  std::vector<std::uint16_t> g16, out(static_cast<std::size_t>(n));
  fill(p, 0.5f, pool);
  fill(m, 0.0f, pool);
  fill(v, 0.0f, pool);
  fill(out, std::uint16_t(0), pool);
  AdamBuffers b;
  b.n = n;
  b.master = p.data();
  b.exp_avg = m.data();
  b.exp_avg_sq = v.data();
  b.out = out.data();
  b.out_kind = Half16::kBF16;
  if (bf16_grad) {
    g16.resize(static_cast<std::size_t>(n));
    fill(g16, float_to_bf16(0.01f), pool);
    b.grad16 = g16.data();
    b.grad16_kind = Half16::kBF16;
  } else {
    g32.resize(static_cast<std::size_t>(n));
    fill(g32, 0.01f, pool);
    b.grad = g32.data();
  }
  AdamParams a;
  a.weight_decay = 0.01;
  const double t = median_seconds(steps, [&](int s) {
    a.step = s + 1;
    adam_step(a, b, pool);
  });
  return double(n) / t;
}

// GPT-style block shapes (d = 1024) repeated until n parameters are used.
std::vector<std::int64_t> layer_sizes(std::int64_t n) {
  const std::int64_t d = 1024;
  const std::vector<std::int64_t> block = {d, d, 3 * d * d, 3 * d, d * d, d, d, d, 4 * d * d, 4 * d, 4 * d * d, d};
  std::vector<std::int64_t> sizes;
  std::int64_t used = 0;
  while (used < n) {
    for (std::int64_t s : block) {
      const std::int64_t take = std::min(s, n - used);
      if (take <= 0) break;
      sizes.push_back(take);
      used += take;
    }
  }
  return sizes;
}

double bench_torch(const std::vector<std::int64_t>& sizes, int steps) {
  std::vector<torch::Tensor> params;
  std::int64_t n = 0;
  for (std::int64_t s : sizes) {
    torch::Tensor p = torch::full({s}, 0.5f).requires_grad_(true);
    p.mutable_grad() = torch::full({s}, 0.01f);
    params.push_back(p);
    n += s;
  }
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
  const double t = median_seconds(steps, [&](int) { opt.step(); });
  return double(n) / t;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CPU Adam throughput: zinf::optim::adam_step vs LibTorch AdamW vs memory bandwidth"};
  std::int64_t n = 100000000;
  int steps = 5;
  int threads = 0;
  std::string isa = "auto";
  bool no_torch = false;
  app.add_option("--n", n, "parameters")->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
  app.add_option("--steps", steps, "timed steps (median reported) after one warm-up")->check(CLI::Range(1, 1000));
  app.add_option("--threads", threads, "threads for the multi-threaded runs; 0 = hardware concurrency")
      ->check(CLI::Range(0, 4096));
  app.add_option("--isa", isa, "auto, scalar, avx2, avx512");
  app.add_flag("--no-torch", no_torch, "skip the LibTorch baselines");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : static_cast<int>(zinf::ExitCode::kUsage);  // --help: 0; bad flag: 2
  }

  try {
    force_isa(parse_isa(isa));
    ThreadPool one(1), all(threads);
    threads = all.threads();
    torch::set_num_threads(threads);

    std::printf("machine: %s, %u hardware threads; bench threads: %d\n", cpu_model().c_str(),
                std::thread::hardware_concurrency(), threads);
    std::printf("N = %lld parameters, median of %d steps, isa = %s, LibTorch %d.%d.%d\n", static_cast<long long>(n),
                steps, isa_name(active_isa()), TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH);

    const Bandwidth bw = measure_bandwidth(static_cast<std::int64_t>(kBytesFp32Grad * double(n)), steps, all);
    const double bw_gbs = bw.best();  // the bound uses the fastest pattern
    const double bound32 = bw_gbs * 1e9 / kBytesFp32Grad, bound16 = bw_gbs * 1e9 / kBytesBf16Grad;
    std::printf(
        "memory bandwidth, %d threads: memcpy %.1f GB/s (read+write), triad %.1f GB/s, in-place a=a*s+b %.1f GB/s; "
        "bound uses the best, %.1f GB/s\n",
        threads, bw.copy_gbs, bw.triad_gbs, bw.rmw_gbs, bw_gbs);
    std::printf("bandwidth bound: %.0f B/param (fp32 grad) -> %.1f Mparams/s; %.0f B/param (bf16 grad) -> %.1f Mparams/s\n",
                kBytesFp32Grad, bound32 / 1e6, kBytesBf16Grad, bound16 / 1e6);

    const double z1 = bench_zinf(n, steps, one, false);
    std::printf("zinf adam_step  fp32 grad -> bf16 out, 1 thread:   %8.1f Mparams/s (%.2f of bound)\n", z1 / 1e6,
                z1 / bound32);
    const double zt = bench_zinf(n, steps, all, false);
    std::printf("zinf adam_step  fp32 grad -> bf16 out, %d threads: %8.1f Mparams/s (%.2f of bound)\n", threads,
                zt / 1e6, zt / bound32);
    const double z16 = bench_zinf(n, steps, all, true);
    std::printf("zinf adam_step  bf16 grad -> bf16 out, %d threads: %8.1f Mparams/s (%.2f of bound)\n", threads,
                z16 / 1e6, z16 / bound16);

    double tflat = 0, tlist = 0;
    std::size_t layers = 0;
    if (!no_torch) {
      tflat = bench_torch({n}, steps);
      std::printf("torch::optim::AdamW, one flat tensor, %d threads: %8.1f Mparams/s (zinf %.1fx)\n", threads,
                  tflat / 1e6, zt / tflat);
      const auto sizes = layer_sizes(n);
      layers = sizes.size();
      tlist = bench_torch(sizes, steps);
      std::printf("torch::optim::AdamW, %zu per-layer tensors, %d threads: %8.1f Mparams/s (zinf %.1fx)\n", layers,
                  threads, tlist / 1e6, zt / tlist);
    }
    std::printf(
        "{\"bench\":\"cpu_adam\",\"n\":%lld,\"threads\":%d,\"isa\":\"%s\",\"copy_gbs\":%.2f,\"triad_gbs\":%.2f,\"rmw_gbs\":%.2f,"
        "\"bound_params_per_s\":%.4g,\"zinf_1t_params_per_s\":%.4g,\"zinf_params_per_s\":%.4g,"
        "\"zinf_bf16_grad_params_per_s\":%.4g,\"fraction_of_bound\":%.3f,\"torch_flat_params_per_s\":%.4g,"
        "\"torch_layers_params_per_s\":%.4g,\"torch_layers\":%zu}\n",
        static_cast<long long>(n), threads, isa_name(active_isa()), bw.copy_gbs, bw.triad_gbs, bw.rmw_gbs, bound32, z1, zt, z16,
        zt / bound32, tflat, tlist, layers);
  } catch (const zinf::Error& e) {
    std::fprintf(stderr, "error: %s\nhint: %s\n", e.what(), e.hint().c_str());
    return static_cast<int>(e.code());
  }
  return 0;
}
