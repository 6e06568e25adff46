// zinf::zero — the offload engine: setup, the autograd function, the public surface.
#include "zero/offload_engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#ifdef ZINF_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#endif

#include "core/error.h"
#include "core/units.h"
#include "log/log.h"
#include "zero/engine_impl.h"

namespace zinf::zero {

Tier parse_tier(const std::string& key, const std::string& value) {
  if (value == "none") return Tier::kDevice;
  if (value == "cpu") return Tier::kCpu;
  if (value == "nvme") return Tier::kNvme;
  throw UsageError(key + " is '" + value + "'", "allowed: none, cpu, nvme");
}

namespace {

constexpr std::int64_t kShardAlign = 64;  // elements: shards start on 128-byte (bf16) boundaries

std::int64_t round_up(std::int64_t v, std::int64_t a) { return (v + a - 1) / a * a; }

// A swap directory name no other engine of this process uses.
std::string unique_run_id() {
  static std::atomic<int> engines{0};
  const int n = engines++;
  return io::default_run_id() + (n == 0 ? std::string() : "-e" + std::to_string(n));
}

}  // namespace

// ---------------------------------------------------------------- setup

void OffloadEngine::Impl::build(const OffloadEngine::Initializer& init) {
  world = opt.comm ? opt.comm->world_size() : 1;
  rank = opt.comm ? opt.comm->rank() : opt.rank;
  sharded_params = world > 1 && opt.partition_params;
  if (!opt.partition_params && opt.param_home != Tier::kDevice)
    throw UsageError("parameters offloaded to " + std::string(tier_name(opt.param_home)) +
                         " with whole blocks on every rank",
                     "offloading parameters needs ZeRO stage 3 (zero_optimization.stage = 3)");
  if (opt.gradients_on_nvme && opt.optimizer_home == Tier::kDevice)
    throw UsageError("gradients on NVMe with the optimizer on the device",
                     "NVMe gradients feed the CPU optimizer: offload the optimizer too (offload_optimizer.device)");
  if (opt.delayed_update &&
      (opt.optimizer_home == Tier::kDevice || opt.param_home != Tier::kCpu || opt.gradients_on_nvme))
    throw UsageError("zinf.offload.delayed_param_update needs parameters in CPU memory, the optimizer offloaded and "
                     "gradients in CPU memory (it keeps a second copy of each while the update runs)",
                     "use --preset infinity-cpu (parameters and optimizer in CPU memory), or drop "
                     "--delayed-param-update");
  for (const auto& b : blocks) {
    if (b.numel <= 0) throw Error("block '" + b.name + "' has no parameters", "every engine block needs some");
    BlockPart p;
    p.numel = b.numel;
    p.offset = numel;
    p.shard = world == 1 ? b.numel : round_up((b.numel + world - 1) / world, kShardAlign);
    p.own_begin = std::min(b.numel, std::int64_t(rank) * p.shard);
    p.own_count = std::clamp<std::int64_t>(b.numel - std::int64_t(rank) * p.shard, 0, p.shard);
    p.owned_offset = owned_total;
    owned_total += p.own_count;
    numel += b.numel;
    parts.push_back(p);
  }
  if (world > 1) comm_worker = std::make_unique<offload::Worker>();
#ifdef ZINF_WITH_CUDA
  if (is_cuda()) {
    const auto index = opt.device.index();
    h2d_stream = std::make_unique<c10::cuda::CUDAStream>(c10::cuda::getStreamFromPool(false, index));
    d2h_stream = std::make_unique<c10::cuda::CUDAStream>(c10::cuda::getStreamFromPool(false, index));
    if (world > 1) comm_stream = std::make_unique<c10::cuda::CUDAStream>(c10::cuda::getStreamFromPool(true, index));
    params_updated.assign(blocks.size(), nullptr);
  }
#endif
  const bool any_nvme =
      opt.param_home == Tier::kNvme || opt.optimizer_home == Tier::kNvme || opt.gradients_on_nvme;
  offload::NvmeBackend nvme;
  if (any_nvme) {
    if (opt.nvme_path.empty())
      throw UsageError("NVMe offload needs a path", "set zero_optimization.offload_*.nvme_path (--nvme-offload-path)");
    uring = std::make_unique<io::UringEngine>(opt.aio);
    swap_dir = std::make_unique<io::SwapDir>(opt.nvme_path, opt.run_id.empty() ? unique_run_id() : opt.run_id,
                                             rank, opt.keep_swap_files);
    nvme.engine = uring.get();
    nvme.dir = swap_dir.get();
    nvme.file_options.checksums = opt.checksums;
  }
  const bool pin = opt.pin_memory && is_cuda();
  const std::int64_t granule = std::max<std::int64_t>(opt.aio.block_size, io::kDirectAlignment);

  // Parameters' homes off the device: CPU segments (all, or max_in_cpu
  // elements' worth with NVMe) and NVMe segments streamed through the pool.
  cpu_seg.assign(blocks.size(), -1);
  nvme_seg.assign(blocks.size(), -1);
  if (opt.param_home != Tier::kDevice) {
    std::vector<std::int64_t> cpu_bytes, nvme_bytes, nvme_numels;
    std::int64_t in_cpu = 0;
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      const std::int64_t h = home_numel(b);
      const bool cpu = opt.param_home == Tier::kCpu || in_cpu + h <= opt.max_in_cpu;
      if (cpu) {
        if (opt.param_home == Tier::kNvme) in_cpu += h;
        cpu_seg[b] = static_cast<int>(cpu_bytes.size());
        cpu_bytes.push_back(h * pbytes());
      } else {
        nvme_seg[b] = static_cast<int>(nvme_bytes.size());
        nvme_bytes.push_back(h * pbytes());
        nvme_numels.push_back(h);
      }
    }
    if (!cpu_bytes.empty())
      cpu_params = std::make_unique<offload::FlatStore>("params-cpu", Tier::kCpu, cpu_bytes, nvme, pin);
    if (opt.delayed_update)
      cpu_params_next = std::make_unique<offload::FlatStore>("params-cpu-next", Tier::kCpu, cpu_bytes, nvme, pin);
    if (!nvme_bytes.empty()) {
      nvme_params = std::make_unique<offload::FlatStore>("params", Tier::kNvme, nvme_bytes, nvme, pin);
      fetch_pool = std::make_unique<offload::PinnedPool>(
          offload::pool_shape(opt.buffer_count, opt.buffer_size, pbytes(), nvme_numels, granule), pin);
    }
  }

  // Optimizer sub-groups over the owned elements. New weights go home one
  // sub-group at a time, so on NVMe a sub-group must cover whole aio blocks.
  std::int64_t sub_group = opt.sub_group_size;
  if (opt.param_home == Tier::kNvme && sub_group > 0) sub_group = round_up(sub_group, granule / pbytes());
  std::vector<std::int64_t> own_counts;
  for (const auto& p : parts) own_counts.push_back(p.own_count);
  const std::vector<offload::SubGroup> groups = offload::make_sub_groups(own_counts, sub_group);
  groups_of.assign(blocks.size(), {});
  std::int64_t largest_group = 1;
  for (std::size_t k = 0; k < groups.size(); ++k) {
    groups_of[groups[k].block].push_back(k);
    largest_group = std::max(largest_group, groups[k].numel);
  }
  if (opt.optimizer_home == Tier::kDevice) {
    grads_dev = torch::zeros({owned_total}, torch::TensorOptions().dtype(torch::kFloat32).device(opt.device));
  } else {
    states = std::make_unique<offload::OptimizerStates>(opt.optimizer_home, groups, nvme, false,
                                                        opt.optimizer_max_in_cpu);
    if (opt.gradients_on_nvme) {
      std::vector<std::int64_t> bytes;
      for (const auto& g : groups) bytes.push_back(4 * g.numel);
      nvme_grads = std::make_unique<offload::FlatStore>("grads", Tier::kNvme, bytes, nvme, false);
      grad_stage = std::make_unique<offload::PinnedPool>(offload::PoolShape{2, 4 * largest_group}, false);
    } else {
      host_grad_dtype = !opt.accumulate_gradients && half_dtype() ? opt.dtype : torch::kFloat32;
      const std::int64_t grad_bytes =
          std::max<std::int64_t>(1, owned_total) * std::int64_t(c10::elementSize(host_grad_dtype));
      host_grads = io::AlignedBuffer(grad_bytes, io::kDirectAlignment, pin);
      if (opt.delayed_update) host_grads_next = io::AlignedBuffer(grad_bytes, io::kDirectAlignment, pin);
    }
    if (opt.accumulate_on_device && opt.accumulate_gradients)
      grads_dev_acc = torch::empty({std::max<std::int64_t>(1, owned_total)},
                                   torch::TensorOptions().dtype(torch::kFloat32).device(opt.device));
    // Pieces off the device for gradients that are added (not copied) into
    // their accumulator: fp32 accumulation, NVMe segments, a tied block.
    // With device sums most pieces carry fp32.
    if (is_cuda())
      grad_pool = std::make_unique<offload::PinnedPool>(
          offload::pool_shape(3, 0, grads_dev_acc.defined() ? 4 : pbytes(), own_counts), pin);
  }
  // Staging for the optimizer's new weights on their way to NVMe or the device.
  const bool host_optimizer = opt.optimizer_home != Tier::kDevice;
  if (host_optimizer && (opt.param_home == Tier::kNvme || (opt.param_home == Tier::kDevice && is_cuda())))
    write_pool = std::make_unique<offload::PinnedPool>(offload::PoolShape{3, largest_group * pbytes()}, pin);

  // One pass over the blocks: each block's initial weights go to the
  // parameters' home (this rank's shard, zero padded; or the whole block,
  // padded so shards all-gather in place when every device holds it) and to
  // the optimizer's master weights; then the buffer takes the next block.
  std::int64_t largest_block = 1;
  for (const auto& p : parts) largest_block = std::max(largest_block, p.numel);
  std::vector<float> block_init(static_cast<std::size_t>(largest_block));
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const BlockPart& p = parts[b];
    // Partitioned parameters: this rank reads its shard only; else the whole
    // block (every rank holds it). block_init[0] is block element `base`.
    const std::int64_t base = sharded_params ? p.own_begin : 0;
    const std::int64_t read = sharded_params ? p.own_count : p.numel;
    if (read > 0) init(b, base, read, block_init.data());
    torch::Tensor home;
    if (sharded_params) {
      home = torch::zeros({p.shard}, torch::kFloat32);
      if (p.own_count > 0) home.narrow(0, 0, p.own_count).copy_(host_tensor(block_init.data(), p.own_count, torch::kFloat32));
    } else if (world > 1 && opt.param_home == Tier::kDevice) {
      home = torch::zeros({world * p.shard}, torch::kFloat32);
      home.narrow(0, 0, p.numel).copy_(host_tensor(block_init.data(), p.numel, torch::kFloat32));
    } else {
      home = host_tensor(block_init.data(), p.numel, torch::kFloat32);
    }
    if (opt.param_home == Tier::kDevice) {
      device_params.push_back(home.to(opt.device, opt.dtype).clone());
    } else {
      const torch::Tensor h = home.to(opt.dtype).contiguous();
      const std::int64_t bytes = home_numel(b) * pbytes();
      if (cpu_seg[b] >= 0) {
        std::memcpy(cpu_params->host(cpu_seg[b]), h.data_ptr(), std::size_t(bytes));
      } else {
        const std::int64_t piece = fetch_pool->buffer_bytes();
        for (std::int64_t off = 0; off < bytes; off += piece) {
          auto lease = fetch_pool->acquire();
          const std::int64_t n = std::min(piece, bytes - off);
          std::memcpy(lease.data(), static_cast<const std::byte*>(h.data_ptr()) + off, std::size_t(n));
          nvme_params->wait(nvme_params->write(nvme_seg[b], off, n, lease.data()));
        }
      }
    }
    const float* owned = block_init.data() + (p.own_begin - base);  // owned element i is block element own_begin + i
    if (opt.optimizer_home == Tier::kDevice) {
      dev_master.push_back(host_tensor(const_cast<float*>(owned), p.own_count, torch::kFloat32).to(opt.device).clone());
      dev_m.push_back(torch::zeros_like(dev_master.back()));
      dev_v.push_back(torch::zeros_like(dev_master.back()));
      continue;
    }
    for (std::size_t k : groups_of[b]) {
      const auto& g = groups[k];
      states->write_group(k, [&](float* mw, float* m, float* v) {
        std::memcpy(mw, owned + (g.begin - p.owned_offset), sizeof(float) * g.numel);
        std::memset(m, 0, sizeof(float) * g.numel);
        std::memset(v, 0, sizeof(float) * g.numel);
      });
    }
  }

  if (cpu_params_next)  // both homes start from the same weights
    for (std::size_t b = 0; b < blocks.size(); ++b)
      std::memcpy(cpu_params_next->host(cpu_seg[b]), cpu_params->host(cpu_seg[b]),
                  std::size_t(cpu_params->bytes(cpu_seg[b])));

  block_ready.assign(blocks.size(), {});
  grad_fresh.assign(blocks.size(), 1);
  has_grad.assign(blocks.size(), 0);
  block_norm2.assign(blocks.size(), 0.0);
  dev_acc_live.assign(blocks.size(), 0);
  host_fresh.assign(blocks.size(), 1);
  anchor = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).requires_grad(true));
}

// Writes fp32 weights [count] at owned element `at` of block b into the
// parameters' home (synchronous; resume and the device optimizer use it).
void OffloadEngine::Impl::write_home_params(std::size_t b, std::int64_t at, const float* src, std::int64_t count) {
  if (count <= 0) return;
  const torch::Tensor from = host_tensor(const_cast<float*>(src), count, torch::kFloat32);
  if (opt.param_home == Tier::kDevice) {
    const std::int64_t base = sharded_params ? 0 : (world > 1 ? rank * parts[b].shard : parts[b].own_begin);
    device_params[b].narrow(0, base + at, count).copy_(from);
    h2d += count * pbytes();
    return;
  }
  const std::int64_t at_bytes = at * pbytes(), bytes = count * pbytes();
  if (cpu_seg[b] >= 0) {
    host_tensor(cpu_params->host(cpu_seg[b]) + at_bytes, count, opt.dtype).copy_(from);
    return;
  }
  auto lease = write_pool ? write_pool->acquire() : fetch_pool->acquire();
  const std::int64_t cap =
      lease.bytes() >= bytes ? bytes : lease.bytes() / io::kDirectAlignment * io::kDirectAlignment;
  for (std::int64_t off = 0; off < bytes; off += cap) {
    const std::int64_t n = std::min(cap, bytes - off);
    host_tensor(lease.data(), n / pbytes(), opt.dtype).copy_(from.narrow(0, off / pbytes(), n / pbytes()));
    const std::int64_t len = nvme_write_bytes(b, at_bytes + off, n, lease.data());
    nvme_params->wait(nvme_params->write(nvme_seg[b], at_bytes + off, len, lease.data()));
  }
}

std::int64_t OffloadEngine::Impl::nvme_write_bytes(std::size_t b, std::int64_t at_bytes, std::int64_t bytes,
                                                   void* buf) const {
  const std::int64_t segment = home_numel(b) * pbytes();
  const std::int64_t len =
      at_bytes + bytes == segment ? bytes : std::min(round_up(bytes, io::kDirectAlignment), segment - at_bytes);
  if (len > bytes) std::memset(static_cast<std::byte*>(buf) + bytes, 0, std::size_t(len - bytes));
  return len;
}

// ---------------------------------------------------------------- autograd

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Call : torch::CustomClassHolder {
  OffloadEngine::Impl* engine = nullptr;
  std::vector<std::size_t> blocks;
  OffloadEngine::Compute fn;
  std::size_t index = 0;  // position in the forward schedule
};

// Times the block computation queued between construction and stop().
class ComputeTimer {
 public:
  explicit ComputeTimer(OffloadEngine::Impl& e) : e_(e), t0_(std::chrono::steady_clock::now()) {
#ifdef ZINF_WITH_CUDA
    if (e_.is_cuda()) {
      start_ = std::make_shared<at::cuda::CUDAEvent>(cudaEventDefault);
      start_->record(c10::cuda::getCurrentCUDAStream());
    }
#endif
  }
  void stop() {
#ifdef ZINF_WITH_CUDA
    if (e_.is_cuda()) {
      auto end = std::make_shared<at::cuda::CUDAEvent>(cudaEventDefault);
      end->record(c10::cuda::getCurrentCUDAStream());
      std::lock_guard<std::mutex> lock(e_.timeline_mu);
      e_.compute_events.emplace_back(start_, end);
      return;
    }
#endif
    e_.add_time(&StepTimeline::compute_s, seconds_since(t0_));
  }

 private:
  OffloadEngine::Impl& e_;
  std::chrono::steady_clock::time_point t0_;
#ifdef ZINF_WITH_CUDA
  EventPtr start_;
#endif
};

struct BlockFunction : torch::autograd::Function<BlockFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& anchor,
                               c10::intrusive_ptr<Call> call) {
    auto* e = call->engine;
    std::vector<torch::Tensor> flats = e->acquire_all(call->blocks);
    e->prefetch_call(call->index + 1);
    // The last call's backward comes right after it: keep its blocks coming.
    if (e->schedule_known && call->index + 1 == e->schedule.size()) e->prefetch_call(call->index);
    ComputeTimer timer(*e);
    torch::Tensor y = call->fn(x, flats);
    timer.stop();
    flats.clear();  // released: only the input is kept
    ctx->save_for_backward({x});
    ctx->saved_data["call"] = c10::IValue::make_capsule(call);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto call = c10::static_intrusive_pointer_cast<Call>(ctx->saved_data["call"].toCapsule());
    auto* e = call->engine;
    const variable_list saved = ctx->get_saved_variables();
    const bool x_grad = saved[0].requires_grad() && saved[0].is_floating_point();
    torch::Tensor x = saved[0].detach().requires_grad_(x_grad);
    std::vector<torch::Tensor> flats = e->acquire_all(call->blocks);
    if (call->index > 0) e->prefetch_call(call->index - 1);
    for (auto& f : flats) f = f.detach().requires_grad_(true);
    ComputeTimer timer(*e);
    torch::Tensor y;
    {
      torch::AutoGradMode grad_on(true);
      y = call->fn(x, flats);
    }
    variable_list inputs = flats;
    if (x_grad) inputs.push_back(x);
    const variable_list g = torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                                  /*create_graph=*/false, /*allow_unused=*/true);
    timer.stop();
    flats.clear();
    for (std::size_t i = 0; i < call->blocks.size(); ++i) e->hand_grad(call->blocks[i], g[i]);
    return {x_grad ? g.back() : torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

// ---------------------------------------------------------------- public

OffloadEngine::OffloadEngine(OffloadEngineOptions options, std::vector<EngineBlock> blocks,
                             const torch::Tensor& initial)
    : OffloadEngine(std::move(options), blocks, [&blocks, &initial](std::size_t b, std::int64_t first,
                                                                     std::int64_t count, float* dst) {
        std::int64_t offset = 0, total = 0;
        for (std::size_t i = 0; i < blocks.size(); ++i) {
          if (i < b) offset += blocks[i].numel;
          total += blocks[i].numel;
        }
        if (!initial.defined() || initial.numel() != total || initial.scalar_type() != torch::kFloat32 ||
            !initial.device().is_cpu() || !initial.is_contiguous())
          throw Error("the engine's initial weights must be a contiguous CPU fp32 tensor of " +
                      std::to_string(total) + " elements");
        if (first < 0 || count < 0 || first + count > blocks[b].numel)
          throw Error("elements [" + std::to_string(first) + ", " + std::to_string(first + count) +
                      ") are outside block " + std::to_string(b));
        std::memcpy(dst, initial.data_ptr<float>() + offset + first, sizeof(float) * std::size_t(count));
      }) {}

OffloadEngine::OffloadEngine(OffloadEngineOptions options, std::vector<EngineBlock> blocks, const Initializer& init)
    : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
  impl_->blocks = std::move(blocks);
  impl_->build(init);
  log::debug("offload engine: params " + std::string(tier_name(impl_->opt.param_home)) + ", optimizer " +
             tier_name(impl_->opt.optimizer_home) + ", " + std::to_string(impl_->blocks.size()) + " blocks, " +
             format_count(double(impl_->numel)) + " parameters, rank " + std::to_string(impl_->rank) + " of " +
             std::to_string(impl_->world));
}

OffloadEngine::~OffloadEngine() {
  // Let every job finish before the buffers they use go away.
  auto& e = *impl_;
  for (offload::Worker* w : {&e.optim_worker, &e.fetch_worker, &e.grad_worker, e.comm_worker.get()}) {
    if (!w) continue;
    try {
      w->drain();
    } catch (...) {
    }
  }
#ifdef ZINF_WITH_CUDA
  if (e.is_cuda()) {
    try {
      for (auto* s : {e.h2d_stream.get(), e.d2h_stream.get(), e.comm_stream.get()})
        if (s) s->synchronize();
    } catch (...) {
    }
  }
#endif
}

torch::Tensor OffloadEngine::run(const std::vector<std::size_t>& list, Compute fn, const torch::Tensor& x) {
  auto& e = *impl_;
  for (std::size_t b : list)
    if (b >= e.blocks.size())
      throw Error("block index " + std::to_string(b) + " is out of range (" + std::to_string(e.blocks.size()) +
                  " blocks)");
  if (!torch::GradMode::is_enabled()) {  // evaluation: no graph, no saved input
    if (!e.schedule.empty() && list == e.schedule.front()) e.cursor = 0;
    std::vector<torch::Tensor> flats = e.acquire_all(list);
    e.prefetch_call(e.cursor + 1);
    ++e.cursor;
    return fn(x, flats);
  }
  // A call with the first call's blocks starts a new forward.
  if (!e.schedule.empty() && list == e.schedule.front() && e.cursor > 0) {
    e.schedule_known = e.cursor == e.schedule.size();
    e.cursor = 0;
  }
  if (e.cursor == e.schedule.size()) e.schedule.push_back(list);
  else if (e.schedule[e.cursor] != list) e.schedule.resize(e.cursor), e.schedule.push_back(list);
  auto call = c10::make_intrusive<Call>();
  call->engine = impl_.get();
  call->blocks = list;
  call->fn = std::move(fn);
  call->index = e.cursor++;
  return BlockFunction::apply(x, e.anchor, call);
}

StepResult OffloadEngine::step(double lr, double loss_scale, double max_grad_norm) {
  auto& e = *impl_;
  e.wait_for_gradients(true);
  e.drop_prefetches();  // prefetches of the next forward would hold stale weights
  StepResult r;
  r.grad_norm = std::sqrt(e.grad_norm_squared()) / loss_scale;
  if (!std::isfinite(r.grad_norm)) {
    r.skipped = true;
    zero_grads();
    return r;
  }
  double coef = 1.0;
  if (max_grad_norm > 0) {
    const double c = max_grad_norm / (r.grad_norm + 1e-6);
    if (c < 1.0) coef = c;
  }
  ++e.step;
  e.launch_update(lr, loss_scale / coef);  // adam_step divides gradients by this
  if (!e.opt.overlap_optimizer) e.finish_update();
  return r;
}

void OffloadEngine::zero_grads() {
  auto& e = *impl_;
  e.wait_for_gradients(false);  // the sums are discarded
  e.reset_step_gradients();
  if (e.grads_dev.defined()) e.grads_dev.zero_();
}

std::int64_t OffloadEngine::step_count() const { return impl_->step; }

void OffloadEngine::set_accumulation_boundary(bool last) { impl_->boundary = last; }

void OffloadEngine::Impl::wait_for_device_work() {
  wait_for_gradients(false);  // device sums of a step in progress stay and keep adding up
#ifdef ZINF_WITH_CUDA
  if (is_cuda()) c10::cuda::getCurrentCUDAStream().synchronize();
#endif
}

void OffloadEngine::synchronize() {
  impl_->finish_update();
  impl_->wait_for_device_work();
}

void OffloadEngine::drain() {
  impl_->drain_update();
  impl_->wait_for_device_work();
}
int OffloadEngine::world_size() const { return impl_->world; }
int OffloadEngine::rank() const { return impl_->rank; }

TransferCounters OffloadEngine::counters() const {
  const auto& e = *impl_;
  TransferCounters c;
  c.h2d_bytes = e.h2d.load();
  c.d2h_bytes = e.d2h.load();
  c.prefetch_hits = e.hits.load();
  c.fetch_misses = e.misses.load();
  for (const offload::FlatStore* s : {e.nvme_params.get(), e.nvme_grads.get()})
    if (s) {
      c.nvme_read_bytes += s->nvme_read_bytes();
      c.nvme_write_bytes += s->nvme_write_bytes();
    }
  if (e.states) {
    c.nvme_read_bytes += e.states->nvme_read_bytes();
    c.nvme_write_bytes += e.states->nvme_write_bytes();
  }
  return c;
}

StepTimeline OffloadEngine::take_timeline() {
  auto& e = *impl_;
  StepTimeline t;
#ifdef ZINF_WITH_CUDA
  std::vector<std::pair<EventPtr, EventPtr>> compute, h2d, d2h;
#endif
  {
    std::lock_guard<std::mutex> lock(e.timeline_mu);
    t = e.timeline;
    e.timeline = StepTimeline{};
#ifdef ZINF_WITH_CUDA
    compute.swap(e.compute_events);
    h2d.swap(e.h2d_events);
    d2h.swap(e.d2h_events);
#endif
  }
#ifdef ZINF_WITH_CUDA
  auto busy = [](const std::vector<std::pair<EventPtr, EventPtr>>& pairs) {
    double ms = 0;
    for (const auto& [a, b] : pairs) {
      b->synchronize();
      ms += a->elapsed_time(*b);
    }
    return ms / 1e3;
  };
  t.compute_s += busy(compute);
  t.h2d_s += busy(h2d);
  t.d2h_s += busy(d2h);
#endif
  return t;
}

std::int64_t OffloadEngine::nvme_reserved_bytes() const {
  const auto& e = *impl_;
  std::int64_t t = e.states ? e.states->nvme_reserved_bytes() : 0;
  for (const offload::FlatStore* s : {e.nvme_params.get(), e.nvme_grads.get()})
    if (s) t += s->reserved_bytes();
  return t;
}

std::int64_t OffloadEngine::pinned_pool_bytes() const {
  const auto& e = *impl_;
  std::int64_t t = 0;
  for (const offload::PinnedPool* p : {e.fetch_pool.get(), e.write_pool.get(), e.grad_pool.get(), e.grad_stage.get()})
    if (p) t += p->total_bytes();
  return t;
}

std::int64_t OffloadEngine::host_state_bytes() const {
  const auto& e = *impl_;
  std::int64_t t = pinned_pool_bytes() + e.host_grads.size() + e.host_grads_next.size();
  if (e.cpu_params) t += e.cpu_params->resident_host_bytes();
  if (e.cpu_params_next) t += e.cpu_params_next->resident_host_bytes();
  if (e.states) t += e.states->host_buffer_bytes();
  return t;
}

std::string OffloadEngine::swap_dir() const { return impl_->swap_dir ? impl_->swap_dir->path() : std::string(); }

const std::vector<EngineBlock>& OffloadEngine::blocks() const { return impl_->blocks; }
const OffloadEngineOptions& OffloadEngine::options() const { return impl_->opt; }

}  // namespace zinf::zero
