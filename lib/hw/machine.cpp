// zinf::hw — GPU, CPU and memory detection.
#include "hw/machine.h"

#include <dlfcn.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "core/torch_compat.h"
#include "core/text.h"

#ifdef ZINF_WITH_CUDA
#include <cuda_runtime_api.h>
#endif
#ifdef ZINF_WITH_NCCL
#include <nccl.h>
#endif

namespace zinf::hw {
namespace {

// A "Key:   value kB" line of /proc/<file>, in bytes; -1 when absent.
std::int64_t proc_kb(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (text::starts_with(line, key + ":")) {
      std::istringstream ss(line.substr(key.size() + 1));
      std::int64_t kb = 0;
      ss >> kb;
      return kb * 1024;
    }
  }
  return -1;
}

}  // namespace

Cpu detect_cpu() {
  Cpu cpu;
  cpu.logical_cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (text::starts_with(line, "model name")) {
      cpu.model = text::trim(line.substr(line.find(':') + 1));
      break;
    }
  }
#if defined(__x86_64__)
  __builtin_cpu_init();
  cpu.avx2 = __builtin_cpu_supports("avx2");
  cpu.avx512f = __builtin_cpu_supports("avx512f");
  cpu.fma = __builtin_cpu_supports("fma");
#endif
  return cpu;
}

Memory detect_memory() {
  Memory m;
  m.total_bytes = proc_kb("/proc/meminfo", "MemTotal");
  m.available_bytes = proc_kb("/proc/meminfo", "MemAvailable");
  if (m.total_bytes < 0) {
    struct sysinfo si;
    ::sysinfo(&si);
    m.total_bytes = static_cast<std::int64_t>(si.totalram) * si.mem_unit;
    m.available_bytes = static_cast<std::int64_t>(si.freeram) * si.mem_unit;
  }
  return m;
}

std::vector<Gpu> detect_gpus() {
  std::vector<Gpu> gpus;
#ifdef ZINF_WITH_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return gpus;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    Gpu g;
    g.index = i;
    g.name = prop.name;
    g.total_bytes = static_cast<std::int64_t>(prop.totalGlobalMem);
    g.major = prop.major;
    g.minor = prop.minor;
    g.bf16 = prop.major >= 8;
    gpus.push_back(g);
  }
#endif
  return gpus;
}

std::int64_t rss_bytes() { return proc_kb("/proc/self/status", "VmRSS"); }
std::int64_t peak_rss_bytes() { return proc_kb("/proc/self/status", "VmHWM"); }

Machine detect() {
  Machine m;
  m.cpu = detect_cpu();
  m.memory = detect_memory();
  m.gpus = detect_gpus();
  m.torch_version = compat::torch_version();
#ifdef ZINF_WITH_CUDA
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  m.cuda_version = std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10);
  m.torch_cuda = !m.gpus.empty();
#endif
#ifdef ZINF_WITH_NCCL
  int nccl = 0;
  ncclGetVersion(&nccl);
  // NCCL encodes 2.28.3 as 22803 since 2.9.
  m.nccl_version = std::to_string(nccl / 10000) + "." + std::to_string(nccl / 100 % 100) + "." + std::to_string(nccl % 100);
#endif
  if (void* h = ::dlopen("libcufile.so", RTLD_LAZY | RTLD_LOCAL)) {
    m.cufile = true;
    ::dlclose(h);
  } else if (void* h0 = ::dlopen("libcufile.so.0", RTLD_LAZY | RTLD_LOCAL)) {
    m.cufile = true;
    ::dlclose(h0);
  }
  return m;
}

}  // namespace zinf::hw
