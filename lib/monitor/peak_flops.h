// zinf::monitor — the peak FLOP/s that MFU divides by.
// Implements: the table of known NVIDIA GPUs' dense peak (no 2:4 sparsity),
// keyed by the CUDA device name, for the precision the model's matmuls run
// in: bf16/fp16 tensor-core peak, or plain fp32 (LibTorch leaves TF32 off for
// matmuls by default). Unknown devices and CPUs get a measured matmul rate
// (lib/train measures it); peak_source says which.
#pragma once

#include <optional>
#include <string>

namespace zinf::monitor {

// Dense peak TFLOP/s of the GPU named `device_name` (as CUDA reports it, e.g.
// "NVIDIA H100 80GB HBM3") for `precision` "bf16", "fp16" or "fp32"; nullopt
// when the table does not know the device or it lacks that precision (bf16 on V100).
std::optional<double> known_peak_tflops(const std::string& device_name, const std::string& precision);

// Model FLOP utilisation in [0, ...): achieved / peak; 0 when peak <= 0.
inline double mfu(double achieved_tflops, double peak_tflops) {
  return peak_tflops > 0 ? achieved_tflops / peak_tflops : 0;
}

}  // namespace zinf::monitor
