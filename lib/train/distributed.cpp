// zinf::train — device choice, group creation and the configuration check across ranks.
#include "train/distributed.h"

#include <torch/torch.h>

#ifdef ZINF_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <cstring>

#include "comm/communicator.h"
#include "core/error.h"

namespace zinf::train {

int cuda_device_for_rank(int local_rank) {
  const int count = static_cast<int>(torch::cuda::device_count());
  if (count <= 1) return 0;
  if (local_rank >= count)
    throw Error("LOCAL_RANK=" + std::to_string(local_rank) + " but this process sees only " + std::to_string(count) +
                    " GPUs",
                "start at most one rank per GPU (zinf launch --gpus ..., torchrun --nproc-per-node)",
                ExitCode::kUnusable);
  return local_rank;
}

std::unique_ptr<comm::Communicator> join_group(const config::Settings& s, const comm::Rendezvous& rdv,
                                               int local_rank) {
  comm::Backend backend = comm::Backend::kGloo;
  if (s.device == "cuda") {
#if defined(ZINF_WITH_CUDA) && defined(ZINF_WITH_NCCL)
    // Before the group exists, so NCCL's communicator lands on this rank's GPU.
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(cuda_device_for_rank(local_rank)));
    backend = comm::Backend::kNccl;
#else
    (void)local_rank;
    throw UsageError("--device cuda on several ranks needs NCCL, and this zinf was built without it",
                     "use --device cpu (Gloo), or build zinf against a CUDA LibTorch with NCCL");
#endif
  } else if (!comm::gloo_available()) {
    throw UsageError("--device cpu on several ranks needs Gloo, and this zinf was built without its headers",
                     "install libgloo-dev (Debian) and rebuild, or train on GPUs with NCCL");
  }
  return comm::Communicator::create(rdv, backend);
}

namespace {

std::string join(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

std::optional<ConfigDifference> differ(const config::Json& a, const config::Json& b, const std::string& path) {
  if (a.is_object() && b.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      const std::string p = join(path, it.key());
      if (!b.contains(it.key())) return ConfigDifference{p, it.value().dump(), "(not set)"};
      if (auto d = differ(it.value(), b.at(it.key()), p)) return d;
    }
    for (auto it = b.begin(); it != b.end(); ++it)
      if (!a.contains(it.key())) return ConfigDifference{join(path, it.key()), "(not set)", it.value().dump()};
    return std::nullopt;
  }
  if (a != b) return ConfigDifference{path, a.dump(), b.dump()};
  return std::nullopt;
}

// Where the group's collectives take their tensors: NCCL works on this
// rank's current CUDA device (join_group selected it), Gloo on the CPU.
torch::Device collective_device(const comm::Communicator& comm) {
#ifdef ZINF_WITH_CUDA
  if (comm.backend() == comm::Backend::kNccl)
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(c10::cuda::current_device()));
#else
  (void)comm;
#endif
  return torch::kCPU;
}

}  // namespace

std::optional<ConfigDifference> first_difference(const config::Json& reference, const config::Json& ours) {
  return differ(reference, ours, "");
}

void check_same_config(comm::Communicator& comm, const config::Json& resolved) {
  const torch::Device device = collective_device(comm);
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  const std::string mine = resolved.dump();
  torch::Tensor size = torch::full({1}, static_cast<std::int64_t>(mine.size()), i64);
  comm.broadcast(size, 0);
  const std::int64_t n = size.to(torch::kCPU).item<std::int64_t>();
  torch::Tensor bytes = torch::empty({n}, torch::kUInt8);
  if (comm.rank() == 0) std::memcpy(bytes.data_ptr<std::uint8_t>(), mine.data(), mine.size());
  bytes = bytes.to(device);
  comm.broadcast(bytes, 0);
  bytes = bytes.to(torch::kCPU);
  const std::string text(reinterpret_cast<const char*>(bytes.data_ptr<std::uint8_t>()), std::size_t(n));

  std::optional<ConfigDifference> diff;
  if (comm.rank() != 0) diff = first_difference(config::Json::parse(text), resolved);
  // Every rank learns which ranks differ, so none is left waiting in a collective...
  torch::Tensor differs = torch::zeros({comm.world_size()}, i64);
  if (diff) differs[comm.rank()].fill_(1);
  comm.all_reduce_sum(differs);
  const torch::Tensor flags = differs.to(torch::kCPU);
  std::string ranks;
  int first = -1;
  for (int r = 0; r < comm.world_size(); ++r)
    if (flags[r].item<std::int64_t>() != 0) {
      if (first < 0) first = r;
      ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    }
  if (first < 0) return;
  // ... and every rank reports the first one's difference, key and values.
  std::string message;
  if (diff)
    message = "rank " + std::to_string(comm.rank()) + " was started with a configuration that differs from rank 0's: " +
              (diff->path.empty() ? std::string("the whole configuration") : diff->path) + " is " + diff->ours +
              " on rank " + std::to_string(comm.rank()) + " but " + diff->reference + " on rank 0";
  torch::Tensor message_size = torch::full({1}, static_cast<std::int64_t>(message.size()), i64);
  comm.broadcast(message_size, first);
  const std::int64_t m = message_size.to(torch::kCPU).item<std::int64_t>();
  torch::Tensor message_bytes = torch::zeros({m}, torch::kUInt8);
  if (comm.rank() == first) std::memcpy(message_bytes.data_ptr<std::uint8_t>(), message.data(), message.size());
  message_bytes = message_bytes.to(device);
  comm.broadcast(message_bytes, first);
  message_bytes = message_bytes.to(torch::kCPU);
  message.assign(reinterpret_cast<const char*>(message_bytes.data_ptr<std::uint8_t>()), std::size_t(m));
  throw UsageError(message + " (ranks whose configuration differs from rank 0's: " + ranks + ")",
                   "start every rank with the same command, flags, --config file and ZINF_* environment");
}

}  // namespace zinf::train
