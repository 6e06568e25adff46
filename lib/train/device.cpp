// zinf::train — device and dtype choice.
#include "train/device.h"

#include "core/error.h"
#include "log/log.h"
#include "train/distributed.h"

namespace zinf::train {

using config::Precision;
using config::Settings;

torch::Device pick_device(const Settings& s, bool several_ranks, int local_rank) {
  if (s.device != "cuda") return torch::kCPU;
  if (!torch::cuda::is_available())
    throw Error("--device cuda was asked for, but " +
                    std::string(
#ifdef ZINF_WITH_CUDA
                        "no CUDA device is visible"
#else
                        "this zinf was built with a CPU-only LibTorch"
#endif
                        ),
                "use --device cpu, or run on a GPU host with a CUDA build of zinf", ExitCode::kUnusable);
  int index = 0;
  if (several_ranks) index = cuda_device_for_rank(local_rank);
  else if (!s.gpus.empty() && s.gpus != "none" && s.gpus != "auto") index = std::stoi(s.gpus.substr(0, s.gpus.find(',')));
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}


torch::Dtype model_dtype(const Settings& s, const torch::Device& device) {
  // LibTorch's CPU kernels lack fp16 for much of the model; bf16 works (slowly)
  // and runs the same master-weight code path as CUDA, which is how CI tests it.
  if (s.precision == Precision::kFp16 && !device.is_cuda())
    throw UsageError("--precision fp16 trains on CUDA only; on CPU zinf trains in fp32 (or bf16)",
                     "use --precision fp32 (or auto) with --device cpu");
  if (s.precision == Precision::kBf16 && !device.is_cuda())
    log::warn_once("train.bf16_cpu", "--precision bf16 on CPU: bf16 parameters and activations with fp32 master "
                                     "weights; expect it to be slower than fp32 on most CPUs");
  return s.precision == Precision::kBf16 ? torch::kBFloat16
         : s.precision == Precision::kFp16 ? torch::kFloat16
                                           : torch::kFloat32;
}

}  // namespace zinf::train
