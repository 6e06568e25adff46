// zinf::zero — the ZeRO-3 / ZeRO-Infinity engine on one rank.
#include "zero/offload_engine.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>

#ifdef ZINF_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <ATen/cuda/CUDAEvent.h>
#endif

#include "core/error.h"
#include "core/units.h"
#include "io/swap_file.h"
#include "log/log.h"
#include "offload/flat_store.h"
#include "offload/pinned_pool.h"
#include "offload/subgroup_pipeline.h"
#include "offload/worker.h"

namespace zinf::zero {

using offload::Tier;

Tier parse_tier(const std::string& key, const std::string& value) {
  if (value == "none") return Tier::kDevice;
  if (value == "cpu") return Tier::kCpu;
  if (value == "nvme") return Tier::kNvme;
  throw UsageError(key + " is '" + value + "'", "allowed: none, cpu, nvme");
}

namespace {

std::int64_t elem_bytes(torch::Dtype dtype) { return static_cast<std::int64_t>(c10::elementSize(dtype)); }

// A swap directory name no other engine of this process uses.
std::string unique_run_id() {
  static std::atomic<int> engines{0};
  const int n = engines++;
  return io::default_run_id() + (n == 0 ? std::string() : "-e" + std::to_string(n));
}

// A host buffer as a CPU tensor (no copy).
torch::Tensor host_tensor(void* data, std::int64_t numel, torch::Dtype dtype) {
  return torch::from_blob(data, {numel}, torch::TensorOptions().dtype(dtype));
}

}  // namespace

// ---------------------------------------------------------------- state

struct OffloadEngine::Impl {
  OffloadEngineOptions opt;
  std::vector<EngineBlock> blocks;
  std::vector<std::int64_t> offsets;  // [blocks] elements into the flat range
  std::int64_t numel = 0;
  std::int64_t step = 0;

  // NVMe plumbing (only when a home is NVMe).
  std::unique_ptr<io::UringEngine> uring;
  std::unique_ptr<io::SwapDir> swap_dir;

  // Parameters. kDevice: device_params[b]; otherwise block b lives in
  // cpu_params (segment cpu_seg[b]) or nvme_params (segment nvme_seg[b]).
  std::vector<torch::Tensor> device_params;
  std::unique_ptr<offload::FlatStore> cpu_params, nvme_params;
  std::vector<int> cpu_seg, nvme_seg;  // -1 when the block is not in that store
  std::unique_ptr<offload::PinnedPool> pool;

  // Optimizer and gradients.
  std::vector<torch::Tensor> dev_master, dev_m, dev_v;  // optimizer_home kDevice
  std::unique_ptr<offload::OptimizerStates> states;      // cpu / nvme
  torch::Tensor grads;                                    // [numel] fp32, device or host

  // Overlap.
  offload::Worker worker;
  struct Fetch {
    std::shared_future<void> done;
    torch::Tensor device;  // filled by the job
  };
  std::mutex fetch_mu;
  std::map<std::size_t, std::shared_ptr<Fetch>> prefetched;  // block -> in flight or ready
  std::vector<std::vector<std::size_t>> schedule;            // block lists of run() calls, forward order
  std::size_t cursor = 0;                                     // next forward call index
  bool schedule_known = false;                                // a whole forward has been seen
  torch::Tensor anchor;                                       // puts every run() on the graph

#ifdef ZINF_WITH_CUDA
  std::unique_ptr<c10::cuda::CUDAStream> h2d_stream, d2h_stream;
#endif

  std::atomic<std::int64_t> h2d{0}, d2h{0}, hits{0}, misses{0};

  bool is_cuda() const { return opt.device.is_cuda(); }
  std::int64_t pbytes() const { return elem_bytes(opt.dtype); }

  // ------------------------------------------------------------ fetch

  // Copies block b's parameters to a fresh device tensor. Runs on the worker
  // (prefetch) or the compute thread (miss).
  torch::Tensor fetch_now(std::size_t b) {
    if (opt.param_home == Tier::kDevice) return device_params[b];
    const std::int64_t n = blocks[b].numel;
    offload::PinnedPool::Lease lease;
    void* src;
    if (cpu_seg[b] >= 0) {
      src = cpu_params->host(cpu_seg[b]);
    } else {
      lease = pool->acquire();
      nvme_params->wait(nvme_params->read(nvme_seg[b], lease.data()));
      src = lease.data();
    }
    torch::Tensor dev = upload(host_tensor(src, n, opt.dtype));
    h2d += n * pbytes();
    return dev;
  }

  torch::Tensor upload(const torch::Tensor& host) {
#ifdef ZINF_WITH_CUDA
    if (is_cuda()) {
      c10::cuda::CUDAStreamGuard guard(*h2d_stream);
      torch::Tensor dev = host.to(opt.device, /*non_blocking=*/true);
      h2d_stream->synchronize();  // the host buffer may be reused once we return
      return dev;
    }
#endif
    return host.clone();  // CPU builds: the "device" copy
  }

  void prefetch(std::size_t b) {
    if (!opt.prefetch || opt.param_home == Tier::kDevice) return;
    std::lock_guard<std::mutex> lock(fetch_mu);
    if (prefetched.count(b)) return;
    auto f = std::make_shared<Fetch>();
    f->done = worker.post([this, f, b] { f->device = fetch_now(b); });
    prefetched[b] = f;
  }

  torch::Tensor acquire(std::size_t b) {
    std::shared_ptr<Fetch> f;
    {
      std::lock_guard<std::mutex> lock(fetch_mu);
      auto it = prefetched.find(b);
      if (it != prefetched.end()) {
        f = it->second;
        prefetched.erase(it);
      }
    }
    torch::Tensor dev;
    if (f) {
      ++hits;
      f->done.get();
      dev = std::move(f->device);
    } else {
      if (opt.param_home != Tier::kDevice) ++misses;
      dev = fetch_now(b);
    }
#ifdef ZINF_WITH_CUDA
    // Allocated on the upload stream, used on the compute stream.
    if (is_cuda() && opt.param_home != Tier::kDevice) dev.record_stream(c10::cuda::getCurrentCUDAStream());
#endif
    return dev;
  }

  std::vector<torch::Tensor> acquire_all(const std::vector<std::size_t>& list) {
    std::vector<torch::Tensor> flats;
    for (std::size_t b : list) flats.push_back(acquire(b));
    return flats;
  }

  void prefetch_call(std::size_t call) {
    if (call < schedule.size())
      for (std::size_t b : schedule[call]) prefetch(b);
  }

  // ------------------------------------------------------------ gradients

  // Adds g ([numel of b], any dtype, on the device) to block b's accumulator.
  void hand_grad(std::size_t b, const torch::Tensor& g) {
    if (!g.defined()) return;
    torch::Tensor acc = grads.narrow(0, offsets[b], blocks[b].numel);
    if (opt.optimizer_home == Tier::kDevice) {
      acc.add_(g.to(torch::kFloat32));
      return;
    }
    d2h += g.numel() * g.element_size();
#ifdef ZINF_WITH_CUDA
    if (is_cuda()) {
      auto ready = std::make_shared<at::cuda::CUDAEvent>();
      ready->record(c10::cuda::getCurrentCUDAStream());
      g.record_stream(*d2h_stream);
      worker.post([this, g, acc, ready] {
        c10::cuda::CUDAStreamGuard guard(*d2h_stream);
        ready->block(*d2h_stream);
        torch::Tensor host = g.to(torch::kCPU, torch::kFloat32, /*non_blocking=*/false);
        acc.add_(host);
      });
      return;
    }
#endif
    worker.post([g, acc] { acc.add_(g.to(torch::kFloat32)); });
  }

  // ------------------------------------------------------------ parameters' home

  // Writes fp32 weights [count] at element `off` of block b into the
  // parameters' home, converting to the compute dtype. For NVMe homes `stage`
  // is the block's staging buffer (written to disk by the caller).
  void write_params(std::size_t b, std::int64_t off, const float* src, std::int64_t count, void* stage) {
    const torch::Tensor from = host_tensor(const_cast<float*>(src), count, torch::kFloat32);
    if (opt.param_home == Tier::kDevice) {
      device_params[b].narrow(0, off, count).copy_(from);
      h2d += count * pbytes();
      return;
    }
    std::byte* base = cpu_seg[b] >= 0 ? cpu_params->host(cpu_seg[b]) : static_cast<std::byte*>(stage);
    host_tensor(base + off * pbytes(), count, opt.dtype).copy_(from);
  }

  // ------------------------------------------------------------ setup

  void build(const torch::Tensor& initial) {
    for (const auto& b : blocks) {
      if (b.numel <= 0) throw Error("block '" + b.name + "' has no parameters", "every engine block needs some");
      offsets.push_back(numel);
      numel += b.numel;
    }
    if (!initial.defined() || initial.numel() != numel || initial.scalar_type() != torch::kFloat32 ||
        !initial.device().is_cpu())
      throw Error("the engine's initial weights must be a CPU fp32 tensor of " + std::to_string(numel) +
                  " elements");
    const torch::Tensor init = initial.contiguous();
#ifdef ZINF_WITH_CUDA
    if (is_cuda()) {
      h2d_stream = std::make_unique<c10::cuda::CUDAStream>(c10::cuda::getStreamFromPool(false, opt.device.index()));
      d2h_stream = std::make_unique<c10::cuda::CUDAStream>(c10::cuda::getStreamFromPool(false, opt.device.index()));
    }
#endif
    const bool any_nvme = opt.param_home == Tier::kNvme || opt.optimizer_home == Tier::kNvme;
    offload::NvmeBackend nvme;
    if (any_nvme) {
      if (opt.nvme_path.empty())
        throw UsageError("NVMe offload needs a path", "set zero_optimization.offload_*.nvme_path (--nvme-path)");
      uring = std::make_unique<io::UringEngine>(opt.aio);
      swap_dir = std::make_unique<io::SwapDir>(opt.nvme_path, opt.run_id.empty() ? unique_run_id() : opt.run_id,
                                               opt.rank, opt.keep_swap_files);
      nvme.engine = uring.get();
      nvme.dir = swap_dir.get();
      nvme.file_options.checksums = opt.checksums;
    }
    const bool pin = opt.pin_memory && is_cuda();

    // Parameters.
    cpu_seg.assign(blocks.size(), -1);
    nvme_seg.assign(blocks.size(), -1);
    if (opt.param_home == Tier::kDevice) {
      for (std::size_t b = 0; b < blocks.size(); ++b)
        device_params.push_back(init.narrow(0, offsets[b], blocks[b].numel).to(opt.device, opt.dtype).clone());
    } else {
      std::vector<std::int64_t> cpu_bytes, nvme_bytes, nvme_numels;
      std::int64_t in_cpu = 0;
      for (std::size_t b = 0; b < blocks.size(); ++b) {
        const bool cpu = opt.param_home == Tier::kCpu || in_cpu + blocks[b].numel <= opt.max_in_cpu;
        if (cpu) {
          if (opt.param_home == Tier::kNvme) in_cpu += blocks[b].numel;
          cpu_seg[b] = static_cast<int>(cpu_bytes.size());
          cpu_bytes.push_back(blocks[b].numel * pbytes());
        } else {
          nvme_seg[b] = static_cast<int>(nvme_bytes.size());
          nvme_bytes.push_back(blocks[b].numel * pbytes());
          nvme_numels.push_back(blocks[b].numel);
        }
      }
      if (!cpu_bytes.empty()) cpu_params = std::make_unique<offload::FlatStore>("params-cpu", Tier::kCpu, cpu_bytes, nvme, pin);
      if (!nvme_bytes.empty()) {
        nvme_params = std::make_unique<offload::FlatStore>("params", Tier::kNvme, nvme_bytes, nvme, pin);
        pool = std::make_unique<offload::PinnedPool>(
            offload::pool_shape(opt.buffer_count, opt.buffer_size, pbytes(), nvme_numels), pin);
      }
      for (std::size_t b = 0; b < blocks.size(); ++b) {
        const torch::Tensor w = init.narrow(0, offsets[b], blocks[b].numel);
        if (cpu_seg[b] >= 0) {
          host_tensor(cpu_params->host(cpu_seg[b]), blocks[b].numel, opt.dtype).copy_(w);
        } else {
          auto lease = pool->acquire();
          host_tensor(lease.data(), blocks[b].numel, opt.dtype).copy_(w);
          nvme_params->wait(nvme_params->write(nvme_seg[b], lease.data()));
        }
      }
    }

    // Optimizer states and gradients.
    if (opt.optimizer_home == Tier::kDevice) {
      for (std::size_t b = 0; b < blocks.size(); ++b) {
        dev_master.push_back(init.narrow(0, offsets[b], blocks[b].numel).to(opt.device).clone());
        dev_m.push_back(torch::zeros_like(dev_master.back()));
        dev_v.push_back(torch::zeros_like(dev_master.back()));
      }
      grads = torch::zeros({numel}, torch::TensorOptions().dtype(torch::kFloat32).device(opt.device));
    } else {
      std::vector<std::int64_t> numels;
      for (const auto& b : blocks) numels.push_back(b.numel);
      states = std::make_unique<offload::OptimizerStates>(
          opt.optimizer_home, offload::make_sub_groups(numels, opt.sub_group_size), nvme, pin);
      states->load(init.data_ptr<float>(), nullptr, nullptr);
      auto topts = torch::TensorOptions().dtype(torch::kFloat32);
#ifdef ZINF_WITH_CUDA
      if (pin) topts = topts.pinned_memory(true);
#endif
      grads = torch::zeros({numel}, topts);
    }
    anchor = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).requires_grad(true));
  }

  // ------------------------------------------------------------ step

  double grad_norm_sq() {
    if (grads.device().is_cpu()) return optim::l2_norm_squared(grads.data_ptr<float>(), grads.numel());
    return grads.to(torch::kFloat64).pow(2).sum().item<double>();
  }

  // grad_scale: gradients are divided by it (loss scale / clip coefficient).
  void update(double lr, double grad_scale) {
    optim::AdamParams h = opt.adam;
    h.lr = lr;
    h.step = step;
    h.grad_scale = grad_scale;
    if (opt.optimizer_home == Tier::kDevice) {
      torch::NoGradGuard no_grad;
      const double bc1 = 1.0 - std::pow(h.beta1, double(h.step)), bc2 = 1.0 - std::pow(h.beta2, double(h.step));
      for (std::size_t b = 0; b < blocks.size(); ++b) {
        torch::Tensor g = grads.narrow(0, offsets[b], blocks[b].numel) * (1.0 / grad_scale);
        torch::Tensor& p = dev_master[b];
        if (!h.adamw && h.weight_decay != 0) g = g + h.weight_decay * p;
        if (h.adamw && h.weight_decay != 0) p.mul_(1.0 - lr * h.weight_decay);
        dev_m[b].mul_(h.beta1).add_(g, 1.0 - h.beta1);
        dev_v[b].mul_(h.beta2).addcmul_(g, g, 1.0 - h.beta2);
        const torch::Tensor denom = (dev_v[b].sqrt() / std::sqrt(bc2)).add_(h.eps);
        p.addcdiv_(dev_m[b], denom, -lr / bc1);
        if (opt.param_home == Tier::kDevice) {
          device_params[b].copy_(p);
        } else {
          const torch::Tensor host = p.to(torch::kCPU);
          write_block_params(b, host.data_ptr<float>());
        }
      }
      return;
    }
    // Host optimizer over sub-groups at their home; NVMe parameter homes get
    // each block's new weights through a staging buffer written when the
    // block's last sub-group is done.
    const auto& groups = states->groups();
    std::deque<std::pair<io::Ticket, offload::PinnedPool::Lease>> writes;
    offload::PinnedPool::Lease stage;
    const float* grad = grads.data_ptr<float>();
    const bool half_home = opt.dtype == torch::kBFloat16 || opt.dtype == torch::kFloat16;
    const optim::Half16 kind = opt.dtype == torch::kFloat16 ? optim::Half16::kFP16 : optim::Half16::kBF16;
    states->for_each([&](std::size_t k, float* master, float* m, float* v) {
      const auto& g = groups[k];
      const std::size_t b = g.block;
      const std::int64_t off = g.begin - offsets[b];  // within the block
      const bool nvme_home = opt.param_home == Tier::kNvme && nvme_seg[b] >= 0;
      if (nvme_home && !stage) {
        if (!writes.empty() && std::int64_t(writes.size()) >= pool->count()) {
          nvme_params->wait(writes.front().first);
          writes.pop_front();
        }
        stage = pool->acquire();
      }
      // A 16-bit home takes the new weights straight from the fused update.
      std::uint16_t* out = nullptr;
      if (half_home && opt.param_home != Tier::kDevice) {
        std::byte* base = nvme_home ? static_cast<std::byte*>(stage.data()) : cpu_params->host(cpu_seg[b]);
        out = reinterpret_cast<std::uint16_t*>(base) + off;
      }
      optim::adam_step(h, master, m, v, grad + g.begin, g.numel, out, kind);
      if (!out) write_params(b, off, master, g.numel, nvme_home ? stage.data() : nullptr);
      const bool last_of_block = k + 1 == groups.size() || groups[k + 1].block != b;
      if (nvme_home && last_of_block) {
        writes.emplace_back(nvme_params->write(nvme_seg[b], stage.data()), std::move(stage));
        stage = {};
      }
    });
    while (!writes.empty()) {
      nvme_params->wait(writes.front().first);
      writes.pop_front();
    }
  }

  void write_block_params(std::size_t b, const float* w) {
    if (opt.param_home == Tier::kNvme && nvme_seg[b] >= 0) {
      auto lease = pool->acquire();
      write_params(b, 0, w, blocks[b].numel, lease.data());
      nvme_params->wait(nvme_params->write(nvme_seg[b], lease.data()));
    } else {
      write_params(b, 0, w, blocks[b].numel, nullptr);
    }
  }
};

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

struct BlockFunction : torch::autograd::Function<BlockFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& anchor,
                               c10::intrusive_ptr<Call> call) {
    auto* e = call->engine;
    std::vector<torch::Tensor> flats = e->acquire_all(call->blocks);
    e->prefetch_call(call->index + 1);
    // The last call's backward comes right after it: keep its blocks coming.
    if (e->schedule_known && call->index + 1 == e->schedule.size()) e->prefetch_call(call->index);
    torch::Tensor y = call->fn(x, flats);
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
    torch::Tensor y;
    {
      torch::AutoGradMode grad_on(true);
      y = call->fn(x, flats);
    }
    variable_list inputs = flats;
    if (x_grad) inputs.push_back(x);
    const variable_list g = torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                                  /*create_graph=*/false, /*allow_unused=*/true);
    flats.clear();
    for (std::size_t i = 0; i < call->blocks.size(); ++i) e->hand_grad(call->blocks[i], g[i]);
    return {x_grad ? g.back() : torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

// ---------------------------------------------------------------- public

OffloadEngine::OffloadEngine(OffloadEngineOptions options, std::vector<EngineBlock> blocks, const torch::Tensor& initial)
    : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
  impl_->blocks = std::move(blocks);
  impl_->build(initial);
  log::debug("offload engine: params " + std::string(offload::tier_name(impl_->opt.param_home)) + ", optimizer " +
             offload::tier_name(impl_->opt.optimizer_home) + ", " + std::to_string(impl_->blocks.size()) + " blocks, " +
             format_count(double(impl_->numel)) + " parameters");
}

OffloadEngine::~OffloadEngine() {
  try {
    impl_->worker.drain();
  } catch (...) {
  }
}

torch::Tensor OffloadEngine::run(const std::vector<std::size_t>& list, Compute fn, const torch::Tensor& x) {
  auto& e = *impl_;
  for (std::size_t b : list)
    if (b >= e.blocks.size())
      throw Error("block index " + std::to_string(b) + " is out of range (" + std::to_string(e.blocks.size()) +
                  " blocks)");
  if (!torch::GradMode::is_enabled()) {  // evaluation: no graph, no saved input
    std::vector<torch::Tensor> flats = e.acquire_all(list);
    if (!e.schedule.empty() && list == e.schedule.front()) e.cursor = 0;
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
  e.worker.drain();
  {
    std::lock_guard<std::mutex> lock(e.fetch_mu);
    for (auto& kv : e.prefetched) kv.second->done.wait();
    e.prefetched.clear();  // prefetches of the next forward would hold stale weights
  }
  StepResult r;
  r.grad_norm = std::sqrt(e.grad_norm_sq()) / loss_scale;
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
  e.update(lr, loss_scale / coef);  // adam_step divides gradients by this
  zero_grads();
  return r;
}

void OffloadEngine::zero_grads() {
  impl_->worker.drain();
  impl_->grads.zero_();
}

std::int64_t OffloadEngine::step_count() const { return impl_->step; }

std::vector<FlatRange> OffloadEngine::owned_ranges() const { return {FlatRange{0, impl_->numel}}; }

void OffloadEngine::save_state(const StateSink& sink) {
  auto& e = *impl_;
  e.worker.drain();
  if (e.opt.optimizer_home == Tier::kDevice) {
    for (std::size_t b = 0; b < e.blocks.size(); ++b) {
      const torch::Tensor p = e.dev_master[b].cpu(), m = e.dev_m[b].cpu(), v = e.dev_v[b].cpu();
      sink({e.offsets[b], e.blocks[b].numel}, p.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>());
    }
    return;
  }
  const auto& groups = e.states->groups();
  e.states->read_each([&](std::size_t k, const float* p, const float* m, const float* v) {
    sink({groups[k].begin, groups[k].numel}, p, m, v);
  });
}

void OffloadEngine::load_state(const StateSource& source, std::int64_t step) {
  auto& e = *impl_;
  e.worker.drain();
  e.prefetched.clear();
  if (e.opt.optimizer_home == Tier::kDevice) {
    for (std::size_t b = 0; b < e.blocks.size(); ++b) {
      const std::int64_t n = e.blocks[b].numel;
      torch::Tensor p = torch::empty({n}, torch::kFloat32), m = torch::empty_like(p), v = torch::empty_like(p);
      source({e.offsets[b], n}, p.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>());
      e.dev_master[b].copy_(p);
      e.dev_m[b].copy_(m);
      e.dev_v[b].copy_(v);
      e.write_block_params(b, p.data_ptr<float>());
    }
  } else {
    const auto& groups = e.states->groups();
    // A block's parameters are refreshed once all its sub-groups are loaded.
    std::vector<float> block_master;
    e.states->write_each([&](std::size_t k, float* p, float* m, float* v) {
      const auto& g = groups[k];
      source({g.begin, g.numel}, p, m, v);
      const std::size_t b = g.block;
      if (block_master.size() < std::size_t(e.blocks[b].numel)) block_master.resize(std::size_t(e.blocks[b].numel));
      std::memcpy(block_master.data() + (g.begin - e.offsets[b]), p, sizeof(float) * g.numel);
      if (k + 1 == groups.size() || groups[k + 1].block != b) e.write_block_params(b, block_master.data());
    });
  }
  e.step = step;
}

EngineState OffloadEngine::state() {
  auto& e = *impl_;
  e.worker.drain();
  EngineState s;
  s.step = e.step;
  if (e.opt.optimizer_home == Tier::kDevice) {
    s.master = torch::cat(e.dev_master).to(torch::kCPU);
    s.exp_avg = torch::cat(e.dev_m).to(torch::kCPU);
    s.exp_avg_sq = torch::cat(e.dev_v).to(torch::kCPU);
  } else {
    s.master = torch::empty({e.numel}, torch::kFloat32);
    s.exp_avg = torch::empty({e.numel}, torch::kFloat32);
    s.exp_avg_sq = torch::empty({e.numel}, torch::kFloat32);
    e.states->save(s.master.data_ptr<float>(), s.exp_avg.data_ptr<float>(), s.exp_avg_sq.data_ptr<float>());
  }
  return s;
}

torch::Tensor OffloadEngine::master_weights() {
  auto& e = *impl_;
  e.worker.drain();
  if (e.opt.optimizer_home == Tier::kDevice) return torch::cat(e.dev_master).to(torch::kCPU);
  torch::Tensor master = torch::empty({e.numel}, torch::kFloat32);
  e.states->save(master.data_ptr<float>(), nullptr, nullptr);
  return master;
}

void OffloadEngine::load_state(const EngineState& s) {
  auto& e = *impl_;
  for (const torch::Tensor* t : {&s.master, &s.exp_avg, &s.exp_avg_sq})
    if (!t->defined() || t->numel() != e.numel || t->scalar_type() != torch::kFloat32)
      throw Error("optimizer state of " + std::to_string(t->defined() ? t->numel() : 0) +
                      " elements does not fit this model's " + std::to_string(e.numel) + " parameters",
                  "resume from a checkpoint written for the same model");
  e.worker.drain();
  e.prefetched.clear();
  const torch::Tensor master = s.master.contiguous().cpu(), m = s.exp_avg.contiguous().cpu(),
                      v = s.exp_avg_sq.contiguous().cpu();
  if (e.opt.optimizer_home == Tier::kDevice) {
    for (std::size_t b = 0; b < e.blocks.size(); ++b) {
      e.dev_master[b].copy_(master.narrow(0, e.offsets[b], e.blocks[b].numel));
      e.dev_m[b].copy_(m.narrow(0, e.offsets[b], e.blocks[b].numel));
      e.dev_v[b].copy_(v.narrow(0, e.offsets[b], e.blocks[b].numel));
    }
  } else {
    e.states->load(master.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>());
  }
  for (std::size_t b = 0; b < e.blocks.size(); ++b)
    e.write_block_params(b, master.data_ptr<float>() + e.offsets[b]);
  e.step = s.step;
}

torch::Tensor OffloadEngine::parameters() {
  auto& e = *impl_;
  e.worker.drain();
  torch::Tensor out = torch::empty({e.numel}, torch::kFloat32);
  torch::NoGradGuard no_grad;
  for (std::size_t b = 0; b < e.blocks.size(); ++b)
    out.narrow(0, e.offsets[b], e.blocks[b].numel).copy_(e.fetch_now(b).to(torch::kCPU, torch::kFloat32));
  return out;
}

TransferCounters OffloadEngine::counters() const {
  const auto& e = *impl_;
  TransferCounters c;
  c.h2d_bytes = e.h2d.load();
  c.d2h_bytes = e.d2h.load();
  c.prefetch_hits = e.hits.load();
  c.fetch_misses = e.misses.load();
  if (e.nvme_params) {
    c.nvme_read_bytes += e.nvme_params->nvme_read_bytes();
    c.nvme_write_bytes += e.nvme_params->nvme_write_bytes();
  }
  if (e.states) {
    c.nvme_read_bytes += e.states->store().nvme_read_bytes();
    c.nvme_write_bytes += e.states->store().nvme_write_bytes();
  }
  return c;
}

std::int64_t OffloadEngine::pinned_pool_bytes() const { return impl_->pool ? impl_->pool->total_bytes() : 0; }

std::int64_t OffloadEngine::host_state_bytes() const {
  const auto& e = *impl_;
  std::int64_t t = pinned_pool_bytes();
  if (e.cpu_params) t += e.cpu_params->resident_host_bytes();
  if (e.states) t += e.states->host_buffer_bytes();
  if (e.grads.device().is_cpu()) t += e.grads.numel() * 4;
  return t;
}

std::string OffloadEngine::swap_dir() const { return impl_->swap_dir ? impl_->swap_dir->path() : std::string(); }

const std::vector<EngineBlock>& OffloadEngine::blocks() const { return impl_->blocks; }
const OffloadEngineOptions& OffloadEngine::options() const { return impl_->opt; }

}  // namespace zinf::zero
