// zinf::hw — what this machine has.
// Implements: detection of GPUs (name, memory, compute capability, bf16),
// host memory, CPU model and vector features (AVX2, AVX-512), and library
// availability (CUDA, NCCL, cuFile/GDS). Disks are in hw/disk.h. Headers stay
// free of LibTorch; GPU queries go through it in machine.cpp only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zinf::hw {

struct Gpu {
  int index = 0;
  std::string name;
  std::int64_t total_bytes = 0;  // device memory
  int major = 0, minor = 0;      // compute capability
  bool bf16 = false;             // compute capability >= 8.0
};

struct Cpu {
  std::string model;
  int logical_cores = 0;
  bool avx2 = false, avx512f = false, fma = false;
};

struct Memory {
  std::int64_t total_bytes = 0;
  std::int64_t available_bytes = 0;
};

struct Machine {
  std::vector<Gpu> gpus;
  Cpu cpu;
  Memory memory;
  bool torch_cuda = false;      // LibTorch built with CUDA and a device present
  std::string torch_version;    // "1.13.1"
  std::string cuda_version;     // "" when not built with CUDA
  std::string nccl_version;     // "" when not built with NCCL
  bool cufile = false;          // libcufile.so loadable (GPUDirect Storage)
};

// Detects everything once (cheap: no kernels launched).
Machine detect();

Cpu detect_cpu();
Memory detect_memory();
std::vector<Gpu> detect_gpus();

// Resident set size of this process now, and its peak (VmHWM), in bytes.
std::int64_t rss_bytes();
std::int64_t peak_rss_bytes();

}  // namespace zinf::hw
