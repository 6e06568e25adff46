// zinf::zero — the offload engine's step: global norm, the optimizer pass, new weights home.
#include <algorithm>
#include <cmath>
#include <cstring>

#ifdef ZINF_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#endif

#include "core/error.h"
#include "core/pool_shape.h"
#include "optim/adamw_tensor.h"
#include "zero/engine_impl.h"

namespace zinf::zero {
namespace {

optim::Half16 half_kind(torch::Dtype d) { return d == torch::kFloat16 ? optim::Half16::kFP16 : optim::Half16::kBF16; }

}  // namespace

double OffloadEngine::Impl::grad_norm_squared() {
  double local = 0;
  if (opt.optimizer_home == Tier::kDevice) {
    torch::NoGradGuard no_grad;
    for (std::size_t b = 0; b < blocks.size(); ++b)  // no contribution this step: zero, not last step's
      if (!has_grad[b] && parts[b].own_count > 0) grads_dev.narrow(0, parts[b].owned_offset, parts[b].own_count).zero_();
    // In pieces: squaring the whole flat gradient at once and widening it to
    // fp64 held 3x its size in temporaries (74 GiB more on a 6.66B model).
    torch::Tensor sum = torch::zeros({}, grads_dev.options().dtype(torch::kFloat64));
    for (std::int64_t at = 0; at < owned_total; at += kNormPieceElements)
      sum += grads_dev.narrow(0, at, std::min(kNormPieceElements, owned_total - at)).square().sum(torch::kFloat64);
    if (owned_total > 0) local = sum.item<double>();
  } else {
    for (std::size_t b = 0; b < blocks.size(); ++b)
      if (has_grad[b]) local += block_norm2[b];
  }
  if (world == 1) return local;
  // Every rank reaches this point in the same order (the workers are drained).
  const auto device = opt.comm->backend() == comm::Backend::kNccl ? opt.device : torch::Device(torch::kCPU);
  torch::Tensor t = torch::full({1}, local, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  opt.comm->all_reduce_sum(t);
  return t.item<double>();
}

void OffloadEngine::Impl::split_decay() {
  if (decay_split) return;
  decay_split = true;
  decay_owned.assign(blocks.size(), {});
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const BlockPart& pt = parts[b];
    const FlatRange owned{pt.offset + pt.own_begin, pt.own_count};
    decay_owned[b] = complement_ranges(clip_ranges(opt.no_decay, owned), pt.own_count);
  }
  if (!states) return;
  const auto& groups = states->groups();
  group_no_decay.assign(groups.size(), {});
  if (opt.no_decay.empty()) return;
  for (std::size_t k = 0; k < groups.size(); ++k) {
    const BlockPart& pt = parts[groups[k].block];
    const std::int64_t at = groups[k].begin - pt.owned_offset;  // owned element index within the block
    group_no_decay[k] = clip_ranges(opt.no_decay, {pt.offset + pt.own_begin + at, groups[k].numel});
  }
}

void OffloadEngine::Impl::launch_update(double lr, double grad_scale) {
  split_decay();
  optim::AdamParams h = opt.adam;
  h.lr = lr;
  h.step = step;
  h.grad_scale = grad_scale;
  const std::vector<char> had = has_grad;  // blocks that got gradients this step
  reset_step_gradients();
  const bool replicated = world > 1 && !sharded_params;  // whole blocks on every device: gather the updates

  if (opt.optimizer_home == Tier::kDevice) {
    torch::NoGradGuard no_grad;
    const auto t0 = std::chrono::steady_clock::now();
    // Every owned block in one optimizer call (optim::adamw_step: one fused
    // launch per list on CUDA), then the new weights to the parameter homes.
    std::vector<optim::AdamWRun> runs;
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      const BlockPart& pt = parts[b];
      if (pt.own_count > 0)
        runs.push_back({dev_master[b], grads_dev.narrow(0, pt.owned_offset, pt.own_count), dev_m[b], dev_v[b],
                        decay_owned[b]});
    }
    if (!runs.empty()) {
      if (!dev_step.defined()) dev_step = torch::zeros({1}, runs.front().param.options());
      dev_step.fill_(double(h.step));
      optim::adamw_step(runs, h, dev_step);
    }
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      const BlockPart& pt = parts[b];
      if (pt.own_count > 0) {
        const torch::Tensor& p = dev_master[b];
        if (opt.param_home == Tier::kDevice) {
          const std::int64_t base = sharded_params ? 0 : pt.own_begin;
          device_params[b].narrow(0, base, pt.own_count).copy_(p);
        } else {
          const torch::Tensor host = p.to(torch::kCPU);
          write_home_params(b, 0, host.data_ptr<float>(), pt.own_count);
        }
      }
      if (replicated) {
        torch::Tensor mine = device_params[b].narrow(0, std::int64_t(rank) * pt.shard, pt.shard).clone();
        opt.comm->all_gather(mine, device_params[b]);
      }
    }
    add_time(&StepTimeline::optimizer_s, seconds_since(t0));
    return;
  }

  // Host optimizer: one pass over the sub-groups on the optimizer worker,
  // block by block in forward order; block b becomes ready (fetchable, its
  // gradient writable) as soon as its new weights are home.
#ifdef ZINF_WITH_CUDA
  EventPtr backward_done;
  if (is_cuda()) {
    h2d_stream->synchronize();  // no DMA still reading a parameter home the pass rewrites
    backward_done = std::make_shared<at::cuda::CUDAEvent>();
    backward_done->record(c10::cuda::getCurrentCUDAStream());  // device homes: the GPU may still read them
  }
#endif
  // The pass writes new weights into `param_out` and reads gradients from
  // `grad_in`: the homes the next forward uses, or (delayed update) the
  // spare ones, so the next step computes with the weights it already has.
  offload::FlatStore* param_out = cpu_params.get();
  const io::AlignedBuffer* grad_in = &host_grads;
  auto written = std::make_shared<std::vector<std::promise<void>>>(blocks.size());
  if (opt.delayed_update) {
    if (update_pending) {  // the previous step's update is done before this one starts
      optim_worker.drain();
      swap_in_update();
    }
    std::swap(host_grads, host_grads_next);  // this step's gradients go to the pass; the next step accumulates anew
    param_out = cpu_params_next.get();
    grad_in = &host_grads_next;
    update_pending = true;
  } else {
    for (std::size_t b = 0; b < blocks.size(); ++b) block_ready[b] = (*written)[b].get_future().share();
  }
  if (replicated) {
    // Each block's shards gather once every rank has written its own part;
    // posted now, in block order, so the collectives line up across ranks.
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      const std::shared_future<void> mine = block_ready[b];
      block_ready[b] = comm_worker->post([this, b, mine] {
        mine.get();
        const auto t0 = std::chrono::steady_clock::now();
        const BlockPart& pt = parts[b];
#ifdef ZINF_WITH_CUDA
        std::unique_ptr<c10::cuda::CUDAStreamGuard> guard;
        if (is_cuda()) {
          guard = std::make_unique<c10::cuda::CUDAStreamGuard>(*comm_stream);
          if (params_updated[b]) params_updated[b]->block(*comm_stream);
        }
#endif
        torch::Tensor part = device_params[b].narrow(0, std::int64_t(rank) * pt.shard, pt.shard).clone();
        opt.comm->all_gather(part, device_params[b]);
#ifdef ZINF_WITH_CUDA
        if (is_cuda()) {
          auto done = std::make_shared<at::cuda::CUDAEvent>();
          done->record(*comm_stream);
          params_updated[b] = done;
        }
#endif
        add_time(&StepTimeline::comm_s, seconds_since(t0));
      });
    }
  }

  optim_worker.post([this, h, had, written, param_out, grad_in
#ifdef ZINF_WITH_CUDA
                     , backward_done
#endif
  ] {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<char> done(blocks.size(), 0);
    const auto& groups = states->groups();
    const optim::Half16 kind = half_kind(opt.dtype);
    // New weights on their way home: NVMe writes, or device copies (CUDA).
    std::deque<std::pair<io::Ticket, offload::PinnedPool::Lease>> nvme_writes;
#ifdef ZINF_WITH_CUDA
    std::deque<std::pair<EventPtr, offload::PinnedPool::Lease>> copies;
    bool waited_backward = false;
#endif
    auto staging = [&]() {  // a write buffer, waiting for the oldest write to land when all are out
      if (!nvme_writes.empty() && nvme_writes.size() >= std::size_t(write_pool->count())) {
        const auto tw = std::chrono::steady_clock::now();
        nvme_params->wait(nvme_writes.front().first);
        add_time(&StepTimeline::nvme_wait_s, seconds_since(tw));
        nvme_writes.pop_front();
      }
#ifdef ZINF_WITH_CUDA
      if (!copies.empty() && copies.size() >= std::size_t(write_pool->count())) {
        copies.front().first->synchronize();
        copies.pop_front();
      }
#endif
      return write_pool->acquire();
    };
    std::vector<float> zeros;
    try {
      states->for_each(
          [&](std::size_t k, float* master, float* m, float* v, const float* stored_grad) {
            const auto& g = groups[k];
            const std::size_t b = g.block;
            const BlockPart& pt = parts[b];
            const std::int64_t at = g.begin - pt.owned_offset;  // owned element index within the block
            optim::AdamBuffers buf;
            buf.n = g.numel;
            buf.no_decay = &group_no_decay[k];
            buf.master = master;
            buf.exp_avg = m;
            buf.exp_avg_sq = v;
            if (!had[b]) {  // no gradient this step: Adam sees zeros, as a flat-buffer model would
              if (zeros.size() < std::size_t(g.numel)) zeros.assign(std::size_t(g.numel), 0.f);
              buf.grad = zeros.data();
            } else if (stored_grad) {
              buf.grad = stored_grad;
            } else if (host_grad_dtype == torch::kFloat32) {
              buf.grad = grad_in->as<float>() + g.begin;
            } else {
              buf.grad16 = grad_in->as<std::uint16_t>() + g.begin;
              buf.grad16_kind = kind;
            }
            const std::int64_t dev_base = sharded_params ? 0 : pt.own_begin;  // device homes
            offload::PinnedPool::Lease lease;
            std::byte* home = nullptr;  // where the new weights go, in the compute dtype
            if (opt.param_home == Tier::kCpu || (opt.param_home == Tier::kNvme && cpu_seg[b] >= 0)) {
              home = param_out->host(cpu_seg[b]) + at * pbytes();
            } else if (write_pool) {
              lease = staging();
              home = static_cast<std::byte*>(lease.data());
            } else {  // device home on a CPU build: the "device" tensor is host memory
              home = static_cast<std::byte*>(device_params[b].data_ptr()) + (dev_base + at) * pbytes();
            }
            if (half_dtype()) {
              buf.out = reinterpret_cast<std::uint16_t*>(home);
              buf.out_kind = kind;
            }
            optim::adam_step(h, buf);
            if (!half_dtype()) std::memcpy(home, master, std::size_t(g.numel) * sizeof(float));
            if (lease && opt.param_home == Tier::kNvme) {
              const std::int64_t len = nvme_write_bytes(b, at * pbytes(), g.numel * pbytes(), lease.data());
              nvme_writes.emplace_back(nvme_params->write(nvme_seg[b], at * pbytes(), len, lease.data()), std::move(lease));
            }
#ifdef ZINF_WITH_CUDA
            if (lease && opt.param_home == Tier::kDevice) {
              c10::cuda::CUDAStreamGuard guard(*h2d_stream);
              if (!waited_backward) {
                backward_done->block(*h2d_stream);
                waited_backward = true;
              }
              device_params[b].narrow(0, dev_base + at, g.numel).copy_(host_tensor(lease.data(), g.numel, opt.dtype),
                                                                        /*non_blocking=*/true);
              auto ev = std::make_shared<at::cuda::CUDAEvent>();
              ev->record(*h2d_stream);
              params_updated[b] = ev;
              h2d += g.numel * pbytes();
              copies.emplace_back(ev, std::move(lease));
            }
#endif
            if (k == groups_of[b].back()) {  // the block's last sub-group: its weights are home
              const auto tw = std::chrono::steady_clock::now();
              while (!nvme_writes.empty()) {
                nvme_params->wait(nvme_writes.front().first);
                nvme_writes.pop_front();
              }
              add_time(&StepTimeline::nvme_wait_s, seconds_since(tw));
              done[b] = 1;
              (*written)[b].set_value();
            }
          },
          nvme_grads.get());
      while (!nvme_writes.empty()) {
        nvme_params->wait(nvme_writes.front().first);
        nvme_writes.pop_front();
      }
#ifdef ZINF_WITH_CUDA
      for (auto& c : copies) c.first->synchronize();
#endif
      for (std::size_t b = 0; b < blocks.size(); ++b)
        if (!done[b]) (*written)[b].set_value();  // blocks this rank owns nothing of
    } catch (...) {
      for (std::size_t b = 0; b < blocks.size(); ++b)
        if (!done[b]) (*written)[b].set_exception(std::current_exception());
      throw;
    }
    add_time(&StepTimeline::optimizer_s, seconds_since(t0));
  });
}

void OffloadEngine::Impl::drain_update() {
  optim_worker.drain();
  if (comm_worker) comm_worker->drain();
  for (auto& f : block_ready)
    if (f.valid()) f.get();
}

void OffloadEngine::Impl::finish_update() {
  drain_update();
  if (update_pending) swap_in_update();
}

void OffloadEngine::Impl::swap_in_update() {
  drop_prefetches();  // nothing may still read the home being swapped out
#ifdef ZINF_WITH_CUDA
  if (is_cuda()) h2d_stream->synchronize();
#endif
  std::swap(cpu_params, cpu_params_next);
  update_pending = false;
}

}  // namespace zinf::zero
