// zinf::train — the GPT trained through the ZeRO-3 / ZeRO-Infinity engine.
#include "train/zero_gpt.h"

#include <algorithm>
#include <memory>

#include "core/error.h"
#include "core/fs.h"
#include "core/units.h"
#include "hw/machine.h"
#include "hw/probe.h"
#include "io/swap_file.h"
#include "log/log.h"
#include "model/architecture.h"
#include "model/gpt.h"
#include "plan/estimate.h"
#include "train/weight_source.h"

namespace zinf::train {

// ---------------------------------------------------------------- offload plan

std::vector<FlatRange> weight_decay_exempt(const config::Settings& s) {
  if (s.weight_decay_all || s.weight_decay == 0) return {};
  return model::no_decay_ranges(model::model_layout(s.model));
}

namespace {

// Empty when `path` can hold `bytes` of swap files through io_uring; the
// reason otherwise.
std::string nvme_unusable(const std::string& path, std::int64_t bytes) {
  if (path.empty()) return "no nvme_path is set";
  try {
    fs::make_dirs(path);
  } catch (const Error& e) {
    return std::string("cannot create ") + path + ": " + e.what();
  }
  // As `zinf validate-nvme` probes it: a read-only or full path is found here,
  // not when the first swap file is written.
  if (std::string failure = hw::check_writable(path); !failure.empty()) return failure;
  const hw::IoSupport io = hw::probe_io(path);
  if (!io.io_uring) return "io_uring is unavailable (" + io.io_uring_error + ")";
  io::reclaim_swap_dirs(path);  // what killed runs left there is free space
  const std::int64_t free = fs::free_bytes(path);
  if (free < bytes)
    return path + " has " + format_bytes(double(free)) + " free but the swap files need " + format_bytes(double(bytes));
  return {};
}

}  // namespace

OffloadPlan resolve_offload(const config::Settings& s, torch::Device device, torch::Dtype dtype, int world) {
  OffloadPlan plan;
  auto& o = plan.engine;
  o.device = device;
  o.dtype = dtype;
  o.rank = 0;
  // Stages 1 and 2 on one rank partition over a single rank: parameters stay
  // on the device; only the optimizer may be offloaded (ZeRO-Offload).
  o.param_home = s.zero_stage >= 3 ? s.offload_param.device : Tier::kDevice;
  o.optimizer_home = s.offload_optimizer.device;
  o.buffer_count = s.offload_param.buffer_count > 0 ? s.offload_param.buffer_count : 5;
  o.buffer_size = s.offload_param.buffer_size;
  o.max_in_cpu = s.offload_param.max_in_cpu;
  o.sub_group_size = s.sub_group_size;
  o.aio.block_size = s.aio_block_size;
  o.aio.queue_depth = static_cast<int>(s.aio_queue_depth);
  o.aio.single_submit = s.aio_single_submit;
  o.checksums = s.checksums;
  o.keep_swap_files = s.keep_swap_files;
  o.pin_memory = s.offload_param.pin_memory || s.offload_optimizer.pin_memory;
  o.partition_params = s.zero_stage >= 3;
  o.accumulate_gradients = s.grad_accum > 1;
  o.gradients_on_nvme = s.offload_gradients_nvme && o.optimizer_home != Tier::kDevice;
  o.optimizer_max_in_cpu = s.optimizer_max_in_cpu;
  o.delayed_update = s.delayed_param_update;
  {
    // Device sums as the planner counts them for this GPU ("auto": on where
    // the estimate with them fits).
    std::optional<std::int64_t> capacity;
    if (device.is_cuda())
      for (const hw::Gpu& g : hw::detect_gpus())
        if (g.index == std::max<int>(0, device.index())) capacity = g.total_bytes;
    const plan::DeviceSumsChoice sums = plan::choose_device_sums(
        s, world, device.is_cuda() ? plan::Target::kCuda : plan::Target::kCpu, capacity);
    o.accumulate_on_device = sums.on;
    plan.device_sums_auto = sums.automatic;
    plan.device_sums_why = sums.why;
  }
  o.adam.adamw = s.adamw;
  o.adam.beta1 = s.beta1;
  o.adam.beta2 = s.beta2;
  o.adam.eps = s.eps;
  o.adam.weight_decay = s.weight_decay;
  o.no_decay = weight_decay_exempt(s);

  const bool params_nvme = o.param_home == Tier::kNvme;
  const bool optim_nvme = o.optimizer_home == Tier::kNvme;
  if (!params_nvme && !optim_nvme && !o.gradients_on_nvme) return plan;
  o.nvme_path = s.swap_root();
  if (params_nvme && optim_nvme && s.offload_optimizer.nvme_path != s.offload_param.nvme_path &&
      !s.offload_optimizer.nvme_path.empty())
    log::warn_once("zero.nvme_paths", "offload_param and offload_optimizer name different nvme_path values; " +
                                          o.nvme_path + " holds both");
  // The swap files this rank's engine reserves, as lib/plan counts them.
  const std::int64_t need =
      plan::estimate_option(plan::inputs_from(s, 1, 1, device.is_cuda() ? plan::Target::kCuda : plan::Target::kCpu),
                            plan::option_from(s))
          .nvme_bytes;
  const std::string why = nvme_unusable(o.nvme_path, need);
  if (why.empty()) return plan;
  if (s.strict_nvme)
    throw Error("NVMe offload is unusable: " + why,
                "fix the path (--nvme-offload-path; `zinf validate-nvme PATH` checks it) or drop --strict-nvme to fall back "
                "to CPU offload", ExitCode::kUnusable);
  log::warn_once("zero.nvme_fallback", "NVMe offload is unusable: " + why + "; falling back to CPU offload");
  if (params_nvme) o.param_home = Tier::kCpu;
  if (optim_nvme) o.optimizer_home = Tier::kCpu;
  o.gradients_on_nvme = false;
  o.nvme_path.clear();
  plan.fell_back = true;
  plan.reason = why;
  return plan;
}

// ---------------------------------------------------------------- model

namespace {

// Views of a block's parameters over its gathered flat buffer.
std::vector<torch::Tensor> views(const model::BlockLayout& block, const torch::Tensor& flat) {
  std::vector<torch::Tensor> out;
  for (const auto& p : block.params) out.push_back(flat.narrow(0, p.offset - block.offset, p.numel).view(p.shape));
  return out;
}

}  // namespace

ZeroGpt::ZeroGpt(const ModelSpec& spec, const torch::Tensor& initial, zero::OffloadEngineOptions options)
    : spec_(spec), layout_(model::model_layout(spec)) {
  std::vector<zero::EngineBlock> blocks;
  for (const auto& b : layout_) blocks.push_back({b.name, b.numel});
  engine_ = std::make_unique<zero::OffloadEngine>(std::move(options), std::move(blocks), initial);
}

ZeroGpt::ZeroGpt(const ModelSpec& spec, const WeightSource& weights, zero::OffloadEngineOptions options)
    : spec_(spec), layout_(model::model_layout(spec)) {
  std::vector<zero::EngineBlock> blocks;
  for (const auto& b : layout_) blocks.push_back({b.name, b.numel});
  engine_ = std::make_unique<zero::OffloadEngine>(
      std::move(options), std::move(blocks),
      [&weights](std::size_t b, std::int64_t first, std::int64_t count, float* dst) { weights.read(b, first, count, dst); });
}

torch::Tensor ZeroGpt::forward(const torch::Tensor& idx, const torch::Tensor& positions) {
  const std::int64_t T = idx.size(1);
  if (T > spec_.seq_len)
    throw UsageError("a sequence of " + std::to_string(T) + " tokens exceeds the model's seq-len " +
                     std::to_string(spec_.seq_len));
  // The engine may keep these functions for backward (recompute): they hold
  // the layout and architecture by pointer (both outlive the graph) and the spec by value.
  const std::vector<model::BlockLayout>* lay = &layout_;
  const std::size_t head = layout_.size() - 1;
  const ModelSpec spec = spec_;
  const model::Architecture* arch = &model::architecture_of(spec_);
  const std::shared_ptr<const model::Packing> packing = model::forward_packing(positions);
  torch::Tensor x = engine_->run({0}, [lay, arch, spec, packing](const torch::Tensor& tokens, const std::vector<torch::Tensor>& f) {
    return arch->embed(tokens, views((*lay)[0], f[0]), spec, 0, packing.get());
  }, idx);
  for (std::size_t b = 1; b < head; ++b) {
    x = engine_->run({b}, [lay, arch, spec, b, packing](const torch::Tensor& in, const std::vector<torch::Tensor>& f) {
      return arch->block(in, views((*lay)[b], f[0]), spec, nullptr, packing.get());
    }, x);
  }
  // A head tied to the token embedding (in block 0) gathers both blocks, and
  // the embedding's gradient adds up from both calls.
  if (arch->head_reads_embedding(spec))
    return engine_->run({head, 0}, [lay, arch, spec, head](const torch::Tensor& in, const std::vector<torch::Tensor>& f) {
      return arch->head(in, views((*lay)[head], f[0]), views((*lay)[0], f[1]), spec);
    }, x);
  return engine_->run({head}, [lay, arch, spec, head](const torch::Tensor& in, const std::vector<torch::Tensor>& f) {
    return arch->head(in, views((*lay)[head], f[0]), {}, spec);
  }, x);
}

torch::Tensor ZeroGpt::loss(const torch::Tensor& idx, const torch::Tensor& targets, const torch::Tensor& positions) {
  return model::next_token_loss(forward(idx, positions), targets, /*sum=*/false);
}

torch::Tensor ZeroGpt::loss_sum(const torch::Tensor& idx, const torch::Tensor& targets,
                                const torch::Tensor& positions) {
  return model::next_token_loss(forward(idx, positions), targets, /*sum=*/true);
}

}  // namespace zinf::train
