// zinf::zero — the offload engine's gradient path: reduce-scatter, device -> host, accumulate.
#ifdef ZINF_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#endif

#include "core/error.h"
#include "optim/grad_accumulate.h"
#include "zero/engine_impl.h"

namespace zinf::zero {
namespace {

// Gradient jobs the compute thread may run ahead of (each holds a block's
// gradient in device memory until it is off the device).
constexpr std::size_t kMaxGradsInFlight = 4;

optim::Half16 half_kind(torch::Dtype d) { return d == torch::kFloat16 ? optim::Half16::kFP16 : optim::Half16::kBF16; }

// acc[0..n) (+)= g ([n] CPU tensor of any float dtype); sum of squares of the result.
double accumulate_into(void* acc, torch::Dtype acc_dtype, const torch::Tensor& g, bool assign, bool norm) {
  const std::int64_t n = g.numel();
  if (acc_dtype == torch::kFloat32) {
    float* a = static_cast<float*>(acc);
    if (g.scalar_type() == torch::kFloat32) return optim::accumulate_grad(a, g.data_ptr<float>(), n, assign, norm);
    return optim::accumulate_grad(a, static_cast<const std::uint16_t*>(g.data_ptr()), half_kind(g.scalar_type()), n,
                                  assign, norm);
  }
  if (g.scalar_type() != acc_dtype)
    throw Error("a " + std::string(c10::toString(g.scalar_type())) + " gradient for a " +
                std::string(c10::toString(acc_dtype)) + " accumulator", "this is a bug in the engine");
  return optim::accumulate_grad(static_cast<std::uint16_t*>(acc), static_cast<const std::uint16_t*>(g.data_ptr()),
                                half_kind(acc_dtype), n, assign, norm);
}

}  // namespace

void OffloadEngine::Impl::hand_grad(std::size_t b, const torch::Tensor& g) {
  if (!g.defined()) return;
  const torch::Tensor grad = g.contiguous();
  const bool assign = grad_fresh[b], norm = boundary;
  grad_fresh[b] = 0;
  has_grad[b] = 1;
  while (grads_in_flight.size() >= kMaxGradsInFlight) {
    const auto f = grads_in_flight.front();
    grads_in_flight.pop_front();
    if (f.valid()) f.get();
  }
  if (world == 1) {
    grads_in_flight.push_back(deliver_grad(b, grad, assign, norm));
    return;
  }
#ifdef ZINF_WITH_CUDA
  EventPtr ready;
  if (is_cuda()) {
    ready = std::make_shared<at::cuda::CUDAEvent>();
    ready->record(c10::cuda::getCurrentCUDAStream());
  }
#endif
  grads_in_flight.push_back(comm_worker->post([this, b, grad, assign, norm
#ifdef ZINF_WITH_CUDA
                                               , ready
#endif
  ] {
    const auto t0 = std::chrono::steady_clock::now();
    const BlockPart& p = parts[b];
#ifdef ZINF_WITH_CUDA
    std::unique_ptr<c10::cuda::CUDAStreamGuard> guard;
    if (is_cuda()) {
      guard = std::make_unique<c10::cuda::CUDAStreamGuard>(*comm_stream);
      ready->block(*comm_stream);
      grad.record_stream(*comm_stream);
    }
#endif
    torch::Tensor padded = grad;
    if (grad.numel() != world * p.shard) {
      padded = torch::zeros({world * p.shard}, grad.options());
      padded.narrow(0, 0, p.numel).copy_(grad);
    }
    torch::Tensor shard = torch::empty({p.shard}, grad.options());
    opt.comm->reduce_scatter_sum(padded, shard);
    add_time(&StepTimeline::comm_s, seconds_since(t0));
    // Throttled like the compute thread's own gradient jobs; only this
    // worker touches delivered_in_flight.
    delivered_in_flight.push_back(deliver_grad(b, shard.narrow(0, 0, p.own_count), assign, norm));
    while (delivered_in_flight.size() > kMaxGradsInFlight) {
      const auto f = delivered_in_flight.front();
      delivered_in_flight.pop_front();
      if (f.valid()) f.get();
    }
  }));
}

// Hands this rank's part of block b's gradient ([own_count], on the device,
// ordered after the current stream's work) to its accumulator. `norm`: this
// is the accumulation boundary's contribution (the norm is summed then).
std::shared_future<void> OffloadEngine::Impl::deliver_grad(std::size_t b, const torch::Tensor& own, bool assign,
                                                           bool norm) {
  const BlockPart& p = parts[b];
  if (p.own_count == 0) return {};
  if (opt.optimizer_home == Tier::kDevice) {
    torch::NoGradGuard no_grad;
    torch::Tensor acc = grads_dev.narrow(0, p.owned_offset, p.own_count);
    if (assign) acc.copy_(own);
    else acc.add_(own);
    return {};
  }
  if (grads_dev_acc.defined()) {
    // Micro-batches before the boundary add up on the device; the boundary's
    // contribution completes the sum, which goes to the host in one copy.
    // A block used twice (the tied embedding) sends its sum at its first
    // boundary use and adds the later ones on the host, as without this.
    torch::NoGradGuard no_grad;
    const bool live = dev_acc_live[b];
    // After a boundary send (its copy may still be queued) the sum is not
    // reused this step: later contributions add on the host.
    if (!live && !host_fresh[b]) return send_to_host(b, own, false, norm);
    if (!norm || live) {
      torch::Tensor sum = device_sum(b);
      live ? sum.add_(own) : sum.copy_(own);
      dev_acc_live[b] = 1;
    }
    if (!norm) return {};
    if (live) return send_device_sum(b);
    host_fresh[b] = 0;  // a single contribution: straight to the host
    return send_to_host(b, own, true, norm);
  }
  return send_to_host(b, own, assign, norm);
}

// The host side of deliver_grad: `own` (on the device, ordered after the
// current stream's work) copied off and assigned or added to block b's host
// or NVMe accumulator on the gradient worker.
std::shared_future<void> OffloadEngine::Impl::send_to_host(std::size_t b, const torch::Tensor& own, bool assign,
                                                           bool norm) {
  d2h += own.numel() * own.element_size();
#ifdef ZINF_WITH_CUDA
  EventPtr ready;
  if (is_cuda()) {
    ready = std::make_shared<at::cuda::CUDAEvent>();
    ready->record(c10::cuda::getCurrentCUDAStream());
    own.record_stream(*d2h_stream);
  }
#endif
  return grad_worker.post([this, b, own, assign, norm
#ifdef ZINF_WITH_CUDA
                           , ready
#endif
  ] {
    wait_ready(b);  // the optimizer has read the previous step's gradient
    const auto t0 = std::chrono::steady_clock::now();
    const BlockPart& p = parts[b];
    [[maybe_unused]] const torch::Dtype gdt = own.scalar_type();
    [[maybe_unused]] const std::int64_t gbytes = own.element_size();
    double norm2 = 0;
#ifdef ZINF_WITH_CUDA
    std::unique_ptr<c10::cuda::CUDAStreamGuard> guard;
    if (is_cuda()) {
      guard = std::make_unique<c10::cuda::CUDAStreamGuard>(*d2h_stream);
      ready->block(*d2h_stream);
    }
    // Copies [offset, offset + count) of `own` into host memory `dst` and
    // waits for it (the d2h stream's busy time goes to the timeline).
    auto copy_down = [&](std::int64_t offset, std::int64_t count, void* dst) {
      auto start = std::make_shared<at::cuda::CUDAEvent>(cudaEventDefault);
      auto end = std::make_shared<at::cuda::CUDAEvent>(cudaEventDefault);
      start->record(*d2h_stream);
      host_tensor(dst, count, gdt).copy_(own.narrow(0, offset, count), /*non_blocking=*/true);
      end->record(*d2h_stream);
      end->synchronize();
      std::lock_guard<std::mutex> lock(timeline_mu);
      d2h_events.emplace_back(start, end);
    };
#endif
    // Feeds `own` piece by piece to sink(offset, cpu_piece): straight from
    // host memory on CPU builds, through pinned staging pieces on CUDA.
    auto pieces = [&](std::int64_t begin, std::int64_t count, const std::function<void(std::int64_t, const torch::Tensor&)>& sink) {
#ifdef ZINF_WITH_CUDA
      if (is_cuda()) {
        auto lease = grad_pool->acquire();
        const std::int64_t step = lease.bytes() / gbytes;  // >= 1: the pool holds the widest piece
        for (std::int64_t off = begin; off < begin + count; off += step) {
          const std::int64_t n = std::min(step, begin + count - off);
          copy_down(off, n, lease.data());
          sink(off, host_tensor(lease.data(), n, gdt));
        }
        return;
      }
#endif
      sink(begin, own.narrow(0, begin, count));
    };
    if (nvme_grads) {
      // Each sub-group's gradient segment: read (unless this is the step's
      // first contribution), add, write back; the write of one sub-group
      // overlaps the next one's accumulation.
      std::deque<std::pair<io::Ticket, offload::PinnedPool::Lease>> writes;
      for (std::size_t k : groups_of[b]) {
        const auto& g = states->groups()[k];
        if (writes.size() >= std::size_t(grad_stage->count())) {
          nvme_grads->wait(writes.front().first);
          writes.pop_front();
        }
        auto stage = grad_stage->acquire();
        float* acc = static_cast<float*>(stage.data());
        if (!assign) {
          const auto tw = std::chrono::steady_clock::now();
          nvme_grads->wait(nvme_grads->read(k, acc));
          add_time(&StepTimeline::nvme_wait_s, seconds_since(tw));
        }
        const std::int64_t first = g.begin - p.owned_offset;
        pieces(first, g.numel, [&](std::int64_t off, const torch::Tensor& piece) {
          norm2 += accumulate_into(acc + (off - first), torch::kFloat32, piece, assign, norm);
        });
        writes.emplace_back(nvme_grads->write(k, acc), std::move(stage));
      }
      const auto tw = std::chrono::steady_clock::now();
      while (!writes.empty()) {
        nvme_grads->wait(writes.front().first);
        writes.pop_front();
      }
      add_time(&StepTimeline::nvme_wait_s, seconds_since(tw));
    } else {
      const std::int64_t abytes = std::int64_t(c10::elementSize(host_grad_dtype));
      std::byte* acc = host_grads.bytes() + p.owned_offset * abytes;
      bool direct = false;
#ifdef ZINF_WITH_CUDA
      // The step's first contribution in the accumulator's own dtype lands
      // there directly: one DMA, no staging, no conversion.
      direct = is_cuda() && assign && gdt == host_grad_dtype;
      if (direct) {
        copy_down(0, p.own_count, acc);
        if (norm)
          norm2 = host_grad_dtype == torch::kFloat32
                      ? optim::l2_norm_squared(reinterpret_cast<const float*>(acc), p.own_count)
                      : optim::l2_norm_squared(reinterpret_cast<const std::uint16_t*>(acc), half_kind(gdt), p.own_count);
      }
#endif
      if (!direct)
        pieces(0, p.own_count, [&](std::int64_t off, const torch::Tensor& piece) {
          norm2 += accumulate_into(acc + off * abytes, host_grad_dtype, piece, assign, norm);
        });
    }
    if (norm) block_norm2[b] = norm2;  // of the gradient accumulated so far: the last contribution's counts
    add_time(&StepTimeline::grad_accumulate_s, seconds_since(t0));
  });
}

std::shared_future<void> OffloadEngine::Impl::send_device_sum(std::size_t b) {
  dev_acc_live[b] = 0;
  const bool first_on_host = host_fresh[b];
  host_fresh[b] = 0;
  return send_to_host(b, device_sum(b), first_on_host, true);
}

void OffloadEngine::Impl::flush_device_accumulators() {
  if (!grads_dev_acc.defined()) return;
  for (std::size_t b = 0; b < blocks.size(); ++b)
    if (dev_acc_live[b]) send_device_sum(b);
}

void OffloadEngine::Impl::wait_for_gradients(bool send_device_sums) {
  if (comm_worker) comm_worker->drain();
#ifdef ZINF_WITH_CUDA
  if (is_cuda() && comm_stream) {  // device accumulators written on the communication stream
    at::cuda::CUDAEvent done;
    done.record(*comm_stream);
    done.block(c10::cuda::getCurrentCUDAStream());
  }
#endif
  // Sums the boundary hint did not send (the hint never lifted).
  if (send_device_sums) flush_device_accumulators();
  grad_worker.drain();
  grads_in_flight.clear();
  delivered_in_flight.clear();
}

void OffloadEngine::Impl::reset_step_gradients() {
  std::fill(grad_fresh.begin(), grad_fresh.end(), 1);
  std::fill(has_grad.begin(), has_grad.end(), 0);
  std::fill(block_norm2.begin(), block_norm2.end(), 0.0);
  std::fill(dev_acc_live.begin(), dev_acc_live.end(), 0);
  std::fill(host_fresh.begin(), host_fresh.end(), 1);
}

}  // namespace zinf::zero
